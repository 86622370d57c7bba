// Package jwt finds JSON Web Tokens in requests, parses them strictly and
// reports what is wrong with them, with or without the issuer's keys.
//
// It is a library, not a detection: it imports nothing of the gateway.
// An adapter in package detections maps Findings to verdicts and per-rule
// modes.
//
// # Flow
//
//	Locate (headers, cookies, query; 0 allocs when none)
//	  └─ Parse (strict JWS compact; JWE header only)
//	       ├─ keyless checks (alg, signature shape, key headers, kid, crit, typ, times)
//	       ├─ verification (providers: JWKS file/URL, HMAC secrets from env)
//	       ├─ algorithm confusion (AlgStore: families learnt per iss and per (iss, kid))
//	       └─ weak HMAC secret (SecretCache verdict; trials on workers only)
//
// # Decisions
//
// A value is taken as a JWT when it has dots and its first segment starts
// with the base64 of '{'; anything else (opaque API keys, session ids) is
// ErrNotJWT and produces no finding, so the detection cannot misfire on
// other credential formats.
//
// Five-segment JWE tokens are recognised, not ignored: their protected
// header goes through the key-header checks (jku, jwk, x5u, x5c, kid), and
// the token is reported as jwt_jwe (info) plus jwt_jwe_dos when it asks for
// decompression (zip) or a PBES2 count above 1.2 million. They are never
// decrypted, so no claim check applies to them.
//
// Parsing is stricter than most libraries on purpose: base64url without
// padding and with zero trailing bits (one encoding per token), JSON
// objects without duplicate keys (after unescaping, so "\u0061lg" is
// "alg"), valid UTF-8, no lone surrogates, bounded depth and size. Two
// components reading one token differently is the root of several JWT
// bypasses; the gateway should see exactly one reading or report the
// token.
//
// Findings are per token and carry a default action. Only an unsigned
// token (jwt_alg_none), a token naming its own key (jwt_key_injection) and
// a token signed with a guessed secret (jwt_weak_secret) block by default.
//
// # Shared state
//
// AlgStore and SecretCache are the seams for Redis. Every key this
// package passes them is an opaque hash of attacker-controlled claims
// ("alg:<32 hex>", "wsf:", "wst:", "wsc:"), never a raw token, issuer or
// secret. Learning is bounded: with keys configured for an issuer only
// verified tokens teach; otherwise a family is learnt after min_sightings
// distinct witnesses, HMAC is never learnt for an issuer already known for
// public-key algorithms, and stores cap their keys.
package jwt
