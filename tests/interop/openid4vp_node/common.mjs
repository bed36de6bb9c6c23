// Helpers shared by verifier.mjs and wallet.mjs: stdin JSON in, one JSON line out, and the crypto callbacks
// that @openid4vc/openid4vp leaves to its caller (signJwt, verifyJwt, hash, getX509CertificateMetadata),
// written with node:crypto only.

import { X509Certificate, createHash, createPrivateKey, createPublicKey, sign, verify } from 'node:crypto'

import { Oauth2ServerErrorResponseError } from '@openid4vc/oauth2'

export const b64url = (bytes) => Buffer.from(bytes).toString('base64url')
export const b64urlJson = (value) => b64url(JSON.stringify(value))

export async function readInput() {
  const chunks = []
  for await (const chunk of process.stdin) chunks.push(chunk)
  return JSON.parse(Buffer.concat(chunks).toString('utf8'))
}

export function hash(data, alg) {
  const name = { 'sha-256': 'sha256', 'sha-384': 'sha384', 'sha-512': 'sha512' }[alg]
  if (!name) throw new Error(`unsupported hash algorithm ${alg}`)
  return new Uint8Array(createHash(name).update(data).digest())
}

// A compact JWS ES256 over header.payload with a private JWK; JWS wants raw r||s (RFC 7518 s3.4), not DER.
export function signEs256(privateJwk, header, payload) {
  const input = `${b64urlJson(header)}.${b64urlJson(payload)}`
  const key = createPrivateKey({ key: privateJwk, format: 'jwk' })
  const signature = sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' })
  return `${input}.${b64url(signature)}`
}

export function publicJwkOf(privateJwk) {
  const { d: _d, ...publicJwk } = privateJwk
  return publicJwk
}

const der = (b64) => Buffer.from(b64, 'base64')

// RFC 5280 path check, the small version a wallet needs: each certificate signed by the next, each inside
// its validity period, the last one issued by (or equal to) a trust anchor. node:crypto has no path builder.
export function checkChain(x5c, anchorsB64, now) {
  const chain = x5c.map((c) => new X509Certificate(der(c)))
  const anchors = anchorsB64.map((c) => new X509Certificate(der(c)))
  const at = now * 1000
  for (const cert of chain) {
    if (at < Date.parse(cert.validFrom) || at > Date.parse(cert.validTo)) {
      throw new Error(`certificate ${cert.subject} is outside its validity period`)
    }
  }
  for (let i = 0; i + 1 < chain.length; i++) {
    if (!chain[i].checkIssued(chain[i + 1]) || !chain[i].verify(chain[i + 1].publicKey)) {
      throw new Error(`certificate ${i} is not issued by certificate ${i + 1}`)
    }
  }
  const top = chain[chain.length - 1]
  const anchored = anchors.some((a) => a.raw.equals(top.raw) || (top.checkIssued(a) && top.verify(a.publicKey)))
  if (!anchored) throw new Error('the certificate chain does not lead to a trust anchor')
  return chain[0]
}

export function sanNames(certificateB64) {
  const names = (new X509Certificate(der(certificateB64)).subjectAltName ?? '').split(', ')
  return {
    sanDnsNames: names.filter((n) => n.startsWith('DNS:')).map((n) => n.slice(4)),
    sanUriNames: names.filter((n) => n.startsWith('URI:')).map((n) => n.slice(4)),
  }
}

// The verifyJwt callback: the library extracts the signer (x5c, jwk, ...) and the caller verifies it.
export function verifyJwtCallback({ trustAnchors, now }) {
  return async (signer, { compact, header }) => {
    let key
    if (signer.method === 'x5c') {
      // The library checks the SAN against the client_id (getX509CertificateMetadata); the trust chain is ours.
      key = checkChain(signer.x5c, trustAnchors, now).publicKey
    } else if (signer.method === 'jwk') {
      key = createPublicKey({ key: signer.publicJwk, format: 'jwk' })
    } else {
      return { verified: false }
    }
    if (header.alg !== 'ES256') return { verified: false }
    const [h, p, s] = compact.split('.')
    const ok = verify('sha256', Buffer.from(`${h}.${p}`), { key, dsaEncoding: 'ieee-p1363' }, Buffer.from(s, 'base64url'))
    return ok ? { verified: true, signerJwk: key.export({ format: 'jwk' }) } : { verified: false }
  }
}

export function emit(value) {
  process.stdout.write(`${JSON.stringify(value)}\n`)
}

// On failure: stdout stays empty, stderr ends with one JSON line, exit code 1.
export function fail(step, error, extra = {}) {
  const line = {
    ...extra,
    step,
    name: error?.constructor?.name ?? 'Error',
    error: error instanceof Oauth2ServerErrorResponseError ? error.errorResponse.error : (error?.code ?? null),
    message: String(error?.message ?? error).split('\n')[0],
  }
  process.stderr.write(`${error?.stack ?? error}\n${JSON.stringify(line)}\n`)
  process.exit(1)
}
