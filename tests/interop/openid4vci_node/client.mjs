// An independent OpenID4VCI 1.0 wallet: the OpenWallet Foundation's @openid4vc/openid4vci client
// (oid4vc-ts) claims one credential from a credential offer, pre-authorised code flow with a tx_code.
//
//   node client.mjs '<openid-credential-offer://?credential_offer...>' <tx_code>
//   (or ELICENCE_OFFER / ELICENCE_TX_CODE in the environment)
//
// Every protocol step is the library's: resolve the offer (by value or by reference), fetch credential
// issuer and authorisation server metadata, token request with the pre-authorised code and tx_code,
// nonce request, key proof JWT, credential request. This script only supplies the callbacks the library
// asks for (signJwt, hash, generateRandom, fetch), with node:crypto and a holder key it generates.
//
// On success stdout is one JSON object:
//   {credential, holder_jwk, credential_issuer, credential_configuration_id, version, authorization_server,
//    exchanges: [{method, url, content_type, authorization_scheme, body, status}, ...]}
// On failure stdout is empty, stderr ends with one JSON line {"error": code, "error_description", "status",
// "step", "exchanges"} and the exit code is 1 (2 for a usage error).

import { createHash, generateKeyPairSync, randomBytes, sign } from 'node:crypto'

import { clientAuthenticationAnonymous, Oauth2ClientErrorResponseError, preAuthorizedCodeGrantIdentifier } from '@openid4vc/oauth2'
import { Openid4vciClient, Openid4vciRetrieveCredentialsError } from '@openid4vc/openid4vci'
import { InvalidFetchResponseError, setGlobalConfig } from '@openid4vc/utils'

const offerLink = process.argv[2] ?? process.env.ELICENCE_OFFER
const txCode = process.argv[3] ?? process.env.ELICENCE_TX_CODE
if (!offerLink) {
  process.stderr.write(`${JSON.stringify({ error: 'usage', error_description: 'node client.mjs <offer deep link> [tx_code]' })}\n`)
  process.exit(2)
}

// The test server is plain http on 127.0.0.1; the library refuses http URLs unless told otherwise.
if (process.env.ELICENCE_ALLOW_HTTP === '1') setGlobalConfig({ allowInsecureUrls: true })

const b64url = (bytes) => Buffer.from(bytes).toString('base64url')

// The holder key: a fresh P-256 key pair, never leaves this process.
const holder = generateKeyPairSync('ec', { namedCurve: 'P-256' })
const holderJwk = holder.publicKey.export({ format: 'jwk' })

// Every HTTP exchange the library makes, recorded (not altered) so that the test can see what was sent.
const exchanges = []
async function recordingFetch(input, init = {}) {
  const request = new Request(input, init)
  const body = init.body === undefined || init.body === null ? null : String(init.body)
  const response = await fetch(request)
  exchanges.push({
    method: request.method,
    url: request.url,
    content_type: request.headers.get('content-type'),
    authorization_scheme: request.headers.get('authorization')?.split(' ')[0] ?? null,
    body,
    status: response.status,
  })
  return response
}

const callbacks = {
  fetch: recordingFetch,
  generateRandom: (length) => new Uint8Array(randomBytes(length)),
  hash: (data, alg) => {
    const name = { 'sha-256': 'sha256', 'sha-384': 'sha384', 'sha-512': 'sha512' }[alg]
    if (!name) throw new Error(`unsupported hash algorithm ${alg}`)
    return new Uint8Array(createHash(name).update(data).digest())
  },
  signJwt: async (signer, { header, payload }) => {
    if (signer.method !== 'jwk' || signer.alg !== 'ES256') throw new Error(`cannot sign for ${signer.method}/${signer.alg}`)
    if (signer.publicJwk.x !== holderJwk.x || signer.publicJwk.y !== holderJwk.y) throw new Error('unknown signing key')
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`
    // JWS ES256 is the raw r||s form (RFC 7518 §3.4), not DER.
    const signature = sign('sha256', Buffer.from(input), { key: holder.privateKey, dsaEncoding: 'ieee-p1363' })
    return { jwt: `${input}.${b64url(signature)}`, signerJwk: signer.publicJwk }
  },
  // The pre-authorised code flow needs no client authentication (OpenID4VCI 1.0 §6.1: client_id optional).
  clientAuthentication: clientAuthenticationAnonymous(),
}

const client = new Openid4vciClient({ callbacks })

let step = 'start'
async function main() {
  step = 'resolve_offer'
  const credentialOffer = await client.resolveCredentialOffer(offerLink)

  step = 'metadata'
  const issuerMetadata = await client.resolveIssuerMetadata(credentialOffer.credential_issuer)

  const configurationId = credentialOffer.credential_configuration_ids[0]
  if (!credentialOffer.grants?.[preAuthorizedCodeGrantIdentifier]) throw new Error('the offer has no pre-authorised code grant')

  step = 'token'
  const { accessTokenResponse, authorizationServer } = await client.retrievePreAuthorizedCodeAccessTokenFromOffer({
    credentialOffer,
    issuerMetadata,
    txCode,
  })

  step = 'nonce'
  const { c_nonce: nonce } = await client.requestNonce({ issuerMetadata })

  step = 'proof'
  const { jwt: proofJwt } = await client.createCredentialRequestJwtProof({
    issuerMetadata,
    credentialConfigurationId: configurationId,
    signer: { method: 'jwk', alg: 'ES256', publicJwk: holderJwk },
    nonce,
  })

  step = 'credential'
  const { credentialResponse } = await client.retrieveCredentials({
    issuerMetadata,
    accessToken: accessTokenResponse.access_token,
    credentialConfigurationId: configurationId,
    proofs: { jwt: [proofJwt] },
  })
  const credential = credentialResponse.credentials?.[0]?.credential
  if (typeof credential !== 'string') throw new Error('the credential response holds no credential')

  process.stdout.write(`${JSON.stringify({
    credential,
    holder_jwk: holderJwk,
    credential_issuer: issuerMetadata.credentialIssuer.credential_issuer,
    credential_configuration_id: configurationId,
    version: issuerMetadata.originalDraftVersion,
    authorization_server: authorizationServer,
    exchanges,
  })}\n`)
}

function describe(error) {
  if (error instanceof Oauth2ClientErrorResponseError) {
    return { error: error.errorResponse.error, error_description: error.errorResponse.error_description, status: error.response.status }
  }
  if (error instanceof Openid4vciRetrieveCredentialsError) {
    const body = error.response.credentialErrorResponseResult?.data ?? {}
    return { error: body.error ?? 'credential_request_failed', error_description: body.error_description ?? error.message, status: error.response.response.status }
  }
  if (error instanceof InvalidFetchResponseError) {
    let body = {}
    try { body = JSON.parse(error.textResponse) } catch { /* not JSON */ }
    return { error: body.error ?? 'fetch_failed', error_description: body.error_description ?? error.message, status: error.response.status }
  }
  return { error: 'client_error', error_description: `${error?.name ?? 'Error'}: ${error?.message ?? error}` }
}

main().catch((error) => {
  process.stderr.write(`${error?.stack ?? error}\n`)
  process.stderr.write(`${JSON.stringify({ ...describe(error), step, exchanges })}\n`)
  process.exit(1)
})
