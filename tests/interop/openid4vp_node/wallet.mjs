// An independent OpenID4VP 1.0 Wallet: @openid4vc/openid4vp's Openid4vpClient answers a request made by
// another Verifier, with @sd-jwt/sd-jwt-vc making the key-bound presentation.
//
//   node wallet.mjs < {authorization_request, request_object, trust_anchors, credential, holder_jwk, now?,
//                      wallet_metadata?, wallet_nonce?}
//     -> {client: {prefix, identifier, effective}, version, query_ids, posted: {url, method, content_type, body},
//         exchanges: [{method, url, content_type, body}, ...]}
//
// parseOpenid4vpAuthorizationRequest reads the openid4vp:// link (client_id, request_uri);
// resolveOpenId4vpAuthorizationRequest fetches the Request Object from request_uri (the fetch callback
// serves the one given on stdin, no network), verifies it (typ, x5c signer, signature and exp through the
// verifyJwt callback, client_id equal to the link's, x509_san_dns: the leaf's dNSName SAN = the client_id
// and the response_uri host = the client_id), and validates the payload. The trust chain to the registrar
// root is checked in our verifyJwt callback. The presentation discloses the claims the DCQL query names;
// createOpenid4vpAuthorizationResponse adds state; submitOpenid4vpAuthorizationResponse posts the form, caught
// by the fetch callback and returned as `posted`.
//
// On failure stdout is empty, stderr ends with one JSON line {step, name, error, message, exchanges}, exit 1.

import { Openid4vpClient } from '@openid4vc/openid4vp'
import { SDJwtVcInstance } from '@sd-jwt/sd-jwt-vc'
import { digest, ES256, generateSalt } from '@sd-jwt/crypto-nodejs'

import { emit, fail, hash, readInput, sanNames, verifyJwtCallback } from './common.mjs'

let step = 'input'
// Every HTTP exchange the library asks for, answered locally and recorded for the test.
const exchanges = []

// A presentation frame for @sd-jwt: {registration: {domicile: true}} for the claim path [registration, domicile].
function frameFor(paths) {
  const frame = {}
  for (const path of paths) {
    let node = frame
    path.forEach((name, i) => {
      if (typeof name !== 'string') throw new Error(`claim path ${JSON.stringify(path)}: only object members are supported here`)
      node[name] = i === path.length - 1 ? true : (typeof node[name] === 'object' ? node[name] : {})
      node = node[name]
    })
  }
  return frame
}

async function answer(input) {
  const now = input.now ?? Math.floor(Date.now() / 1000)
  const client = new Openid4vpClient({
    callbacks: {
      hash,
      // No network: GET request_uri serves the Request Object given on stdin; the direct_post is recorded.
      fetch: async (url, init = {}) => {
        const method = (init.method ?? 'GET').toUpperCase()
        const body = init.body === undefined ? null : String(init.body)
        exchanges.push({ method, url: String(url), content_type: new Headers(init.headers).get('content-type'), body })
        if (method === 'POST' && step === 'submit') return new Response('{}', { status: 200, headers: { 'content-type': 'application/json' } })
        if (String(url) !== parsedLink.params.request_uri) return new Response('not found', { status: 404 })
        const headers = { 'content-type': 'application/oauth-authz-req+jwt' }
        return new Response(input.request_object, { status: 200, headers })
      },
      verifyJwt: verifyJwtCallback({ trustAnchors: input.trust_anchors, now }),
      getX509CertificateMetadata: sanNames,
      signJwt: async () => { throw new Error('the wallet signs nothing through the library') },
      decryptJwe: async () => ({ decrypted: false }),
      encryptJwe: async () => { throw new Error('encryption is not used') },
    },
  })
  step = 'parse_request'
  const parsedLink = client.parseOpenid4vpAuthorizationRequest({ authorizationRequest: input.authorization_request })
  if (parsedLink.type !== 'jar') throw new Error(`expected a request by reference, got ${parsedLink.type}`)

  step = 'resolve_request'
  // With request_uri_method=post the library posts `wallet.metadata` to request_uri (s5.10), and with
  // `wallet.expectedNonce` it requires that wallet_nonce in the Request Object.
  const wallet = input.wallet_metadata || input.wallet_nonce
    ? { metadata: input.wallet_metadata, expectedNonce: input.wallet_nonce }
    : undefined
  const resolved = await client.resolveOpenId4vpAuthorizationRequest({ authorizationRequestPayload: parsedLink.params, wallet })
  const request = resolved.authorizationRequestPayload
  if (!resolved.dcql) throw new Error('the request has no dcql_query')

  step = 'present'
  const sdjwt = new SDJwtVcInstance({
    hasher: digest,
    saltGenerator: generateSalt,
    kbSigner: await ES256.getSigner(input.holder_jwk),
    kbSignAlg: 'ES256',
  })
  const vpToken = {}
  for (const query of resolved.dcql.query.credentials) {
    vpToken[query.id] = [await sdjwt.present(input.credential, frameFor((query.claims ?? []).map((c) => c.path)), {
      // B.3.6: aud is the Client Identifier (the library's "effective" one), nonce the request's.
      kb: { payload: { aud: resolved.client.effective, nonce: request.nonce, iat: now } },
    })]
  }

  step = 'response'
  const { authorizationResponsePayload } = await client.createOpenid4vpAuthorizationResponse({
    authorizationRequestPayload: request,
    authorizationResponsePayload: { vp_token: vpToken },
  })
  // The library's own direct_post (s8.2), recorded by the fetch callback instead of going to the network.
  step = 'submit'
  await client.submitOpenid4vpAuthorizationResponse({ authorizationRequestPayload: request, authorizationResponsePayload })
  emit({
    client: { prefix: resolved.client.prefix, identifier: resolved.client.identifier, effective: resolved.client.effective },
    version: resolved.version,
    query_ids: Object.keys(vpToken),
    posted: exchanges.at(-1),
    exchanges,
  })
}

readInput().then(answer).catch((error) => fail(step, error, { exchanges }))
