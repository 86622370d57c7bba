package jwt

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
)

// identityDomain separates Identity hashes from every other use of
// SHA-256 over the same bytes.
const identityDomain = "rampart/credential-identity/v1\x00"

// Identity returns a stable pseudonym for a credential (a token, an API
// key, a guessed secret): the first 16 bytes of SHA-256 over a
// domain-separation prefix and the secret, in hex. Log it, count it, key
// Redis with it; never the credential itself. It is not a password hash:
// do not use it to store secrets that must stay confidential against a
// dictionary.
func Identity(secret string) string {
	h := sha256.New()
	h.Write([]byte(identityDomain))
	h.Write(bytesView(secret))
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:16])
}

// stateID names a piece of shared state: the truncated hash of a tuple
// (issuer, kid, alg...) under a kind. Hashing gives attacker-chosen
// issuers and kids bounded, opaque keys; length prefixes make ("ab","c")
// and ("a","bc") differ. Local caches key by the array, which costs no
// allocation; stores get its text form from key.
type stateID [16]byte

// stateBuf is the size up to which a tuple is hashed from the stack.
const stateBuf = 512

func stateKey(kind string, parts ...string) stateID {
	n := len("rampart/jwt-state/v1") + len(kind) + 4*(2+len(parts))
	for _, p := range parts {
		n += len(p)
	}
	var sum [sha256.Size]byte
	if n <= stateBuf {
		var buf [stateBuf]byte
		b := appendPart(buf[:0], "rampart/jwt-state/v1")
		b = appendPart(b, kind)
		for _, p := range parts {
			b = appendPart(b, p)
		}
		sum = sha256.Sum256(b)
	} else {
		h := sha256.New()
		var b []byte
		b = appendPart(b, "rampart/jwt-state/v1")
		b = appendPart(b, kind)
		h.Write(b)
		for _, p := range parts {
			var l [4]byte
			binary.BigEndian.PutUint32(l[:], uint32(len(p)))
			h.Write(l[:])
			h.Write(bytesView(p))
		}
		h.Sum(sum[:0])
	}
	var id stateID
	copy(id[:], sum[:])
	return id
}

func appendPart(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// key is the store key of id: kind ":" 32 hex digits.
func (id stateID) key(kind string) string {
	var buf [40]byte
	b := append(buf[:0], kind...)
	b = append(b, ':')
	return string(hex.AppendEncode(b, id[:]))
}
