package jwt

import (
	"crypto"
	"crypto/elliptic"
	"strings"

	// Register the hashes the JWS algorithms name.
	_ "crypto/sha256"
	_ "crypto/sha512"
)

// AlgFamily is one family of JWS algorithms: what an issuer's key can do.
// Families are single bits so that a set of them is an AlgFamilies.
type AlgFamily uint8

// Algorithm families.
const (
	FamilyHMAC   AlgFamily = 1 << iota // HS256, HS384, HS512
	FamilyRSA                          // RS256, RS384, RS512
	FamilyRSAPSS                       // PS256, PS384, PS512
	FamilyECDSA                        // ES256, ES384, ES512, ES256K
	FamilyEdDSA                        // EdDSA, Ed25519, Ed448
)

// String returns the family name, e.g. "hmac".
func (f AlgFamily) String() string {
	switch f {
	case FamilyHMAC:
		return "hmac"
	case FamilyRSA:
		return "rsa"
	case FamilyRSAPSS:
		return "rsa_pss"
	case FamilyECDSA:
		return "ecdsa"
	case FamilyEdDSA:
		return "eddsa"
	}
	return "unknown"
}

// AlgFamilies is a set of families.
type AlgFamilies uint8

// Has reports whether f is in the set.
func (s AlgFamilies) Has(f AlgFamily) bool { return s&AlgFamilies(f) != 0 }

// With returns the set plus f.
func (s AlgFamilies) With(f AlgFamily) AlgFamilies { return s | AlgFamilies(f) }

// asymmetricOnly reports whether the set names a public-key family and no
// HMAC: an issuer whose HMAC token can only be forged.
func (s AlgFamilies) asymmetricOnly() bool {
	return s != 0 && !s.Has(FamilyHMAC)
}

// alg is a registered JWS algorithm (RFC 7518, RFC 8037, RFC 8812,
// draft-ietf-jose-fully-specified-algorithms).
type alg uint8

const (
	algUnknown alg = iota
	algNone
	algHS256
	algHS384
	algHS512
	algRS256
	algRS384
	algRS512
	algPS256
	algPS384
	algPS512
	algES256
	algES384
	algES512
	algES256K
	algEdDSA
	algEd25519
	algEd448
	numAlgs
)

type algInfo struct {
	name string
	fam  AlgFamily
	hash crypto.Hash
	// sigLens are the possible signature lengths in bytes; for RSA the
	// bounds of a range.
	sigMin, sigMax int
	// order is the big-endian group order of an ECDSA curve, its byte
	// length half the signature.
	order []byte
}

// RSA signatures are as long as the modulus: RFC 7518 §3.3 requires at
// least 2048 bits, and 8192 bits is beyond any deployed JWT issuer.
const (
	rsaMinSig = 2048 / 8
	rsaMaxSig = 8192 / 8
)

var algs = [numAlgs]algInfo{
	algNone:    {name: "none"},
	algHS256:   {name: "HS256", fam: FamilyHMAC, hash: crypto.SHA256, sigMin: 32, sigMax: 32},
	algHS384:   {name: "HS384", fam: FamilyHMAC, hash: crypto.SHA384, sigMin: 48, sigMax: 48},
	algHS512:   {name: "HS512", fam: FamilyHMAC, hash: crypto.SHA512, sigMin: 64, sigMax: 64},
	algRS256:   {name: "RS256", fam: FamilyRSA, hash: crypto.SHA256, sigMin: rsaMinSig, sigMax: rsaMaxSig},
	algRS384:   {name: "RS384", fam: FamilyRSA, hash: crypto.SHA384, sigMin: rsaMinSig, sigMax: rsaMaxSig},
	algRS512:   {name: "RS512", fam: FamilyRSA, hash: crypto.SHA512, sigMin: rsaMinSig, sigMax: rsaMaxSig},
	algPS256:   {name: "PS256", fam: FamilyRSAPSS, hash: crypto.SHA256, sigMin: rsaMinSig, sigMax: rsaMaxSig},
	algPS384:   {name: "PS384", fam: FamilyRSAPSS, hash: crypto.SHA384, sigMin: rsaMinSig, sigMax: rsaMaxSig},
	algPS512:   {name: "PS512", fam: FamilyRSAPSS, hash: crypto.SHA512, sigMin: rsaMinSig, sigMax: rsaMaxSig},
	algES256:   {name: "ES256", fam: FamilyECDSA, hash: crypto.SHA256, sigMin: 64, sigMax: 64},
	algES384:   {name: "ES384", fam: FamilyECDSA, hash: crypto.SHA384, sigMin: 96, sigMax: 96},
	algES512:   {name: "ES512", fam: FamilyECDSA, hash: crypto.SHA512, sigMin: 132, sigMax: 132},
	algES256K:  {name: "ES256K", fam: FamilyECDSA, hash: crypto.SHA256, sigMin: 64, sigMax: 64},
	algEdDSA:   {name: "EdDSA", fam: FamilyEdDSA, sigMin: 64, sigMax: 114},
	algEd25519: {name: "Ed25519", fam: FamilyEdDSA, sigMin: 64, sigMax: 64},
	algEd448:   {name: "Ed448", fam: FamilyEdDSA, sigMin: 114, sigMax: 114},
}

func init() {
	// Curve orders come from the standard library rather than typed-in
	// constants; secp256k1 is not there (SEC 2, §2.4.1).
	algs[algES256].order = elliptic.P256().Params().N.FillBytes(make([]byte, 32))
	algs[algES384].order = elliptic.P384().Params().N.FillBytes(make([]byte, 48))
	algs[algES512].order = elliptic.P521().Params().N.FillBytes(make([]byte, 66))
	algs[algES256K].order = []byte{
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
		0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41,
	}
}

// parseAlg maps a header alg to its enum. It is exact, as RFC 7515 says
// alg is case-sensitive.
func parseAlg(s string) alg {
	switch s {
	case "none":
		return algNone
	case "HS256":
		return algHS256
	case "HS384":
		return algHS384
	case "HS512":
		return algHS512
	case "RS256":
		return algRS256
	case "RS384":
		return algRS384
	case "RS512":
		return algRS512
	case "PS256":
		return algPS256
	case "PS384":
		return algPS384
	case "PS512":
		return algPS512
	case "ES256":
		return algES256
	case "ES384":
		return algES384
	case "ES512":
		return algES512
	case "ES256K":
		return algES256K
	case "EdDSA":
		return algEdDSA
	case "Ed25519":
		return algEd25519
	case "Ed448":
		return algEd448
	}
	return algUnknown
}

// internAlg returns the constant string for a registered alg so that the
// common header allocates nothing for it.
func internAlg(b []byte) string {
	if a := parseAlg(string(b)); a != algUnknown {
		return algs[a].name
	}
	return string(b)
}

// isNoneVariant reports whether s is "none" in any case, with the blanks
// and NULs that some parsers trim.
func isNoneVariant(s string) bool {
	return strings.EqualFold(strings.Trim(s, " \t\r\n\x00"), "none")
}

// caseVariant reports whether s is a registered alg in another letter
// case, an evasion of exact-match allowlists.
func caseVariant(s string) bool {
	for a := algHS256; a < numAlgs; a++ {
		if strings.EqualFold(s, algs[a].name) {
			return true
		}
	}
	return false
}

// FamilyOf returns the family of a JWS alg name, 0 for none and unknown
// names.
func FamilyOf(name string) AlgFamily { return algs[parseAlg(name)].fam }

// algSet is a set of algs, for a key's pinned algorithms.
type algSet uint32

func (s algSet) has(a alg) bool { return s&(1<<a) != 0 }

func setOf(as ...alg) algSet {
	var s algSet
	for _, a := range as {
		s |= 1 << a
	}
	return s
}
