package jwt

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"

	"github.com/go-jose/go-jose/v4"
)

// verifyKey is one key with the algorithms it may verify. Per RFC 8725
// §3.1 the key decides the algorithm: the token's alg only selects among
// what the key allows, so an RSA key can never verify an HS256 token.
type verifyKey struct {
	kid  string
	algs algSet
	pub  any // *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey or []byte
}

// keySet is an immutable set of keys, swapped whole on refresh.
type keySet struct {
	byKID   map[string][]*verifyKey
	noKID   []*verifyKey
	all     []*verifyKey
	hasHMAC bool
}

func newKeySet(keys []*verifyKey) *keySet {
	s := &keySet{byKID: make(map[string][]*verifyKey), all: keys}
	for _, k := range keys {
		if k.kid == "" {
			s.noKID = append(s.noKID, k)
		} else {
			s.byKID[k.kid] = append(s.byKID[k.kid], k)
		}
		if k.algs&setOf(algHS256, algHS384, algHS512) != 0 {
			s.hasHMAC = true
		}
	}
	return s
}

// maxKeysTried bounds the keys a token without a usable kid is tried
// against.
const maxKeysTried = 8

// candidates returns the keys to try for kid, and whether kid was
// unknown.
func (s *keySet) candidates(kid string) ([]*verifyKey, bool) {
	if kid != "" {
		if ks := s.byKID[kid]; len(ks) > 0 {
			return ks, false
		}
		return s.noKID[:min(len(s.noKID), maxKeysTried)], true
	}
	return s.all[:min(len(s.all), maxKeysTried)], false
}

// maxJWKSKeys bounds the keys taken from one JWKS document.
const maxJWKSKeys = 100

// jwkPrivate names the JWK members that carry private or secret material.
type jwkPrivate struct {
	D, P, Q, DP, DQ, QI, K, Priv json.RawMessage
}

// parseJWKS reads a JWK Set (RFC 7517 §5). Keys that cannot verify JWS
// signatures here are skipped, as §5 asks: unknown kty, use other than
// "sig", an alg incompatible with the key, RSA below 2048 bits, and any key
// carrying private or symmetric material (a public JWKS has none; HMAC
// secrets come from the environment). go-jose decodes and validates the
// key material (curve points, x5c matching the key).
func parseJWKS(data []byte) (*keySet, int, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, 0, fmt.Errorf("decoding JWKS: %w", err)
	}
	if len(doc.Keys) > maxJWKSKeys {
		return nil, 0, fmt.Errorf("JWKS holds %d keys, more than %d", len(doc.Keys), maxJWKSKeys)
	}
	var keys []*verifyKey
	skipped := 0
	for _, raw := range doc.Keys {
		k, err := parseJWK(raw)
		if err != nil {
			skipped++
			continue
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, skipped, errors.New("JWKS holds no usable signature key")
	}
	return newKeySet(keys), skipped, nil
}

func parseJWK(raw json.RawMessage) (*verifyKey, error) {
	var priv jwkPrivate
	if err := json.Unmarshal(raw, &priv); err != nil {
		return nil, err
	}
	if priv.D != nil || priv.P != nil || priv.Q != nil || priv.DP != nil || priv.DQ != nil ||
		priv.QI != nil || priv.K != nil || priv.Priv != nil {
		return nil, errors.New("key carries private material")
	}
	var jk jose.JSONWebKey
	if err := jk.UnmarshalJSON(raw); err != nil {
		return nil, err
	}
	if jk.Use != "" && jk.Use != "sig" {
		return nil, errors.New("key is not for signatures")
	}
	var allowed algSet
	switch pub := jk.Key.(type) {
	case *rsa.PublicKey:
		if pub.N.BitLen() < 2048 {
			return nil, errors.New("RSA key below 2048 bits")
		}
		allowed = setOf(algRS256, algRS384, algRS512, algPS256, algPS384, algPS512)
	case *ecdsa.PublicKey:
		switch pub.Curve {
		case elliptic.P256():
			allowed = setOf(algES256)
		case elliptic.P384():
			allowed = setOf(algES384)
		case elliptic.P521():
			allowed = setOf(algES512)
		default:
			return nil, errors.New("unsupported curve")
		}
	case ed25519.PublicKey:
		allowed = setOf(algEdDSA, algEd25519)
	default:
		return nil, errors.New("unsupported key type")
	}
	if jk.Algorithm != "" {
		a := parseAlg(jk.Algorithm)
		if !allowed.has(a) {
			return nil, errors.New("key alg does not match its type")
		}
		allowed = setOf(a)
	}
	return &verifyKey{kid: jk.KeyID, algs: allowed, pub: jk.Key}, nil
}

// verifySignature checks sig over input with k for al. The caller has
// checked that k allows al.
func verifySignature(k *verifyKey, al alg, input string, sig []byte) bool {
	info := &algs[al]
	switch pub := k.pub.(type) {
	case []byte:
		m := hmac.New(info.hash.New, pub)
		_, _ = io.WriteString(m, input)
		var buf [64]byte
		return hmac.Equal(m.Sum(buf[:0]), sig)
	case *rsa.PublicKey:
		if len(sig) != pub.Size() {
			return false
		}
		digest := hashOf(info.hash, input)
		if info.fam == FamilyRSAPSS {
			return rsa.VerifyPSS(pub, info.hash, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) == nil
		}
		return rsa.VerifyPKCS1v15(pub, info.hash, digest, sig) == nil
	case *ecdsa.PublicKey:
		size := (pub.Curve.Params().BitSize + 7) / 8
		if len(sig) != 2*size {
			return false
		}
		r := new(big.Int).SetBytes(sig[:size])
		s := new(big.Int).SetBytes(sig[size:])
		return ecdsa.Verify(pub, hashOf(info.hash, input), r, s)
	case ed25519.PublicKey:
		return ed25519.Verify(pub, bytesView(input), sig)
	}
	return false
}

func hashOf(h crypto.Hash, input string) []byte {
	d := h.New()
	_, _ = io.WriteString(d, input)
	return d.Sum(nil)
}
