// An independent OpenID4VP 1.0 Verifier: the OpenWallet Foundation's @openid4vc/openid4vp (oid4vc-ts), with
// the `dcql` package (same foundation) for the DCQL check and @sd-jwt/sd-jwt-vc for the SD-JWT VC and its
// Key Binding JWT.
//
//   node verifier.mjs create < {dns_name, response_uri, request_uri, signing_jwk, x5c, vct, claims, aud?, expires_in?,
//                               now?, client_metadata?: null}
//     -> {authorization_request, request_object, request_payload}
//   Openid4vpVerifier.createOpenId4vpAuthorizationRequest makes and validates the request payload and the
//   signed JAR request object (typ oauth-authz-req+jwt, x5c header, iat/exp, aud); this script only
//   signs (signJwt callback, node:crypto ES256 with the access certificate's key).
//
//   node verifier.mjs verify < {request_payload, response, issuer_jwk, now?, max_age?}
//     -> {state, expected_nonce, client_id, presentations: {id: [{vct, claims, kb}]}, dcql: {can_be_satisfied}}
//   parseOpenid4vpAuthorizationResponse checks the direct_post body: state, vp_token as a DCQL object of
//   query id -> non-empty array; it returns the expected nonce and leaves the presentations to the caller.
//   Each presentation then goes through SDJwtVcInstance.verify (issuer signature, iat/nbf/exp, digests,
//   KB-JWT typ/signature by cnf.jwk/nonce/sd_hash); KB aud (= the effective client_id from
//   getOpenid4vpClientId) and freshness are checked here; DcqlPresentationResult checks the disclosed
//   claims against the query.
//
// On failure stdout is empty, stderr ends with one JSON line {step, name, error, message}, exit code 1.

import { randomBytes } from 'node:crypto'

import { getOpenid4vpClientId, Openid4vpVerifier } from '@openid4vc/openid4vp'
import { SDJwtVcInstance } from '@sd-jwt/sd-jwt-vc'
import { digest, ES256 } from '@sd-jwt/crypto-nodejs'
import { DcqlPresentationResult, DcqlQuery } from 'dcql'

import { emit, fail, hash, publicJwkOf, readInput, signEs256, verifyJwtCallback } from './common.mjs'

const command = process.argv[2]
let step = 'input'

function verifierFor(input) {
  return new Openid4vpVerifier({
    callbacks: {
      hash,
      signJwt: async (signer, { header, payload }) => {
        // The library asks for an x5c signer (jwtSigner below) and puts x5c, alg and typ in the header.
        if (signer.method !== 'x5c' || signer.alg !== 'ES256') {
          throw new Error(`cannot sign for ${signer.method}/${signer.alg}`)
        }
        return { jwt: signEs256(input.signing_jwk, header, payload), signerJwk: publicJwkOf(input.signing_jwk) }
      },
      verifyJwt: verifyJwtCallback({ trustAnchors: [], now: Math.floor(Date.now() / 1000) }),
      decryptJwe: async () => ({ decrypted: false }),
      encryptJwe: async () => { throw new Error('encryption is not used') },
    },
  })
}

async function create(input) {
  step = 'create'
  const nonce = randomBytes(32).toString('base64url')
  const state = randomBytes(32).toString('base64url')
  const verifier = verifierFor(input)
  const jar = {
    requestUri: input.request_uri,
    jwtSigner: { method: 'x5c', alg: 'ES256', x5c: input.x5c },
    expiresInSeconds: input.expires_in ?? 300,
    // createOpenId4vpAuthorizationRequest's own `now` option does not reach the JAR's iat/exp (0.4.6 passes
    // only the jar options on to createJarAuthorizationRequest), so the time goes in here.
    now: input.now === undefined ? undefined : new Date(input.now * 1000),
  }
  // Without an explicit aud the library sets aud = request_uri; null in the input keeps that default.
  if (input.aud !== null && input.aud !== undefined) jar.additionalJwtPayload = { aud: input.aud }
  const result = await verifier.createOpenId4vpAuthorizationRequest({
    authorizationRequestPayload: {
      response_type: 'vp_token',
      client_id: `x509_san_dns:${input.dns_name}`,
      response_mode: 'direct_post',
      response_uri: input.response_uri,
      nonce,
      state,
      dcql_query: {
        credentials: [{
          id: 'licence',
          format: 'dc+sd-jwt',
          meta: { vct_values: [input.vct] },
          claims: input.claims.map((path) => ({ path })),
        }],
      },
      // null in the input leaves client_metadata out (the library does not require it).
      client_metadata: input.client_metadata === null ? undefined : {
        client_name: 'Independent verifier (oid4vc-ts)',
        vp_formats_supported: { 'dc+sd-jwt': { 'sd-jwt_alg_values': ['ES256'], 'kb-jwt_alg_values': ['ES256'] } },
      },
    },
    jar,
  })
  emit({
    authorization_request: result.authorizationRequest,
    request_object: result.jar.authorizationRequestJwt,
    request_payload: result.authorizationRequestPayload,
  })
}

async function verifyPresentation(text, { issuerJwk, expectedNonce, clientId, now, maxAge }) {
  const sdjwt = new SDJwtVcInstance({
    hasher: digest,
    verifier: await ES256.getVerifier(issuerJwk),
    // RFC 9901 s4.3: the KB-JWT is signed by the key in the credential's cnf.jwk.
    kbVerifier: async (data, signature, payload) => (await ES256.getVerifier(payload.cnf.jwk))(data, signature),
  })
  step = 'presentation'
  const { payload, header, kb } = await sdjwt.verify(text, { keyBindingNonce: expectedNonce, currentDate: now })
  if (header?.typ !== 'dc+sd-jwt') throw new Error(`credential typ ${header?.typ} is not dc+sd-jwt`)
  step = 'key_binding'
  // OpenID4VP 1.0 B.3.6: aud "MUST be the value of the Client Identifier"; the library leaves this to us.
  if (kb.payload.aud !== clientId) throw new Error(`KB-JWT aud ${kb.payload.aud} is not ${clientId}`)
  if (kb.payload.iat > now + 60 || kb.payload.iat < now - maxAge) throw new Error(`KB-JWT iat ${kb.payload.iat} is not fresh`)
  const claims = await sdjwt.getClaims(text)
  return { vct: payload.vct, claims, kb: kb.payload }
}

async function verifyResponse(input) {
  const now = input.now ?? Math.floor(Date.now() / 1000)
  const verifier = verifierFor({})
  step = 'response'
  const parsed = await verifier.parseOpenid4vpAuthorizationResponse({
    authorizationResponse: input.response,
    authorizationRequestPayload: input.request_payload,
  })
  if (parsed.type !== 'dcql') throw new Error(`expected a DCQL response, got ${parsed.type}`)
  const { effectiveClientId } = getOpenid4vpClientId({
    clientId: input.request_payload.client_id,
    responseMode: input.request_payload.response_mode,
  })
  const presentations = {}
  for (const [queryId, entries] of Object.entries(parsed.dcql.presentations)) {
    presentations[queryId] = []
    for (const entry of entries) {
      if (typeof entry !== 'string') throw new Error(`presentation for ${queryId} is not a string`)
      const expected = { expectedNonce: parsed.expectedNonce, clientId: effectiveClientId, now, maxAge: input.max_age ?? 300 }
      presentations[queryId].push(await verifyPresentation(entry, { issuerJwk: input.issuer_jwk, ...expected }))
    }
  }
  step = 'dcql'
  const query = DcqlQuery.parse(parsed.dcql.query)
  DcqlQuery.validate(query)
  const record = Object.fromEntries(Object.entries(presentations).map(([id, found]) => [id, found.map((p) => ({
    credential_format: 'dc+sd-jwt', vct: p.vct, claims: p.claims, cryptographic_holder_binding: true,
  }))]))
  const result = DcqlPresentationResult.fromDcqlPresentation(record, { dcqlQuery: query })
  DcqlPresentationResult.validate(result)  // throws unless the query is satisfied
  emit({
    state: parsed.authorizationResponsePayload.state ?? null,
    expected_nonce: parsed.expectedNonce,
    client_id: effectiveClientId,
    presentations,
    dcql: { can_be_satisfied: result.can_be_satisfied },
  })
}

const commands = { create, verify: verifyResponse }
if (!commands[command]) {
  const usage = { step: 'usage', name: 'Usage', error: 'usage', message: 'node verifier.mjs create|verify < input.json' }
  process.stderr.write(`${JSON.stringify(usage)}\n`)
  process.exit(2)
}
readInput().then(commands[command]).catch((error) => fail(step, error))
