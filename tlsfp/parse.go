package tlsfp

import (
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
)

// Errors returned by Parse. Every failure wraps ErrMalformed (ErrTruncated
// does too) except ErrNotClientHello and ErrUnsupported, so callers can tell
// "this is not a ClientHello" from "this ClientHello is broken".
var (
	ErrMalformed      = errors.New("tlsfp: malformed ClientHello")
	ErrTruncated      = fmt.Errorf("tlsfp: truncated ClientHello: %w", ErrMalformed)
	ErrNotClientHello = errors.New("tlsfp: not a TLS ClientHello")
	ErrUnsupported    = errors.New("tlsfp: SSL 2.0 compatible ClientHello not supported")
)

// Record and handshake constants (RFC 8446 section 5.1 and 4).
const (
	recordTypeHandshake  = 22
	handshakeClientHello = 1
	recordHeaderLen      = 5
	handshakeHeaderLen   = 4
	// maxPlaintext is the largest TLSPlaintext.fragment (2^14, RFC 8446 5.1).
	maxPlaintext = 1 << 14
	// maxHello bounds the reassembled ClientHello; the 24-bit length could
	// otherwise ask for 16 MiB. Real hellos are under 2 KiB (4 KiB with
	// post-quantum key shares).
	maxHello = 1 << 16
)

// Parse parses the first ClientHello in b, which is either TLS records
// (starting with a handshake record; a ClientHello fragmented over several
// records is reassembled) or a bare handshake message. Bytes after the
// ClientHello are ignored. Every length is checked: a hello that does not fit
// exactly is an error, never a panic or a partial result.
//
// Parse checks structure, not policy: duplicate extensions are kept (their
// content is read from the first one), and empty ALPN entries are allowed,
// because JA4 has rules for both. The returned Hello owns its memory.
func Parse(b []byte) (Hello, error) {
	msg, err := handshakeMessage(b)
	if err != nil {
		return Hello{}, err
	}
	return parseClientHello(msg)
}

// handshakeMessage returns the ClientHello handshake message body (without
// the 4-byte handshake header) found at the start of b.
func handshakeMessage(b []byte) ([]byte, error) {
	if len(b) == 0 {
		return nil, ErrTruncated
	}
	switch {
	case b[0] == handshakeClientHello:
		if len(b) < handshakeHeaderLen {
			return nil, ErrTruncated
		}
		n := int(b[1])<<16 | int(b[2])<<8 | int(b[3])
		if n > maxHello {
			return nil, errors.Join(ErrMalformed, errors.New("handshake message too long"))
		}
		if len(b)-handshakeHeaderLen < n {
			return nil, ErrTruncated
		}
		return b[handshakeHeaderLen : handshakeHeaderLen+n], nil
	case b[0] == recordTypeHandshake:
		return reassemble(b)
	case b[0]&0x80 != 0 && len(b) >= 3 && b[2] == handshakeClientHello:
		return nil, ErrUnsupported
	}
	return nil, ErrNotClientHello
}

// reassemble concatenates handshake records until the first handshake
// message is complete. It copies only when the message spans records.
func reassemble(b []byte) ([]byte, error) {
	var msg []byte
	need := -1 // handshake message length incl. header, once known
	for {
		if len(b) < recordHeaderLen {
			return nil, ErrTruncated
		}
		if b[0] != recordTypeHandshake {
			return nil, errors.Join(ErrMalformed, errors.New("non-handshake record inside ClientHello"))
		}
		if b[1] != 3 {
			if msg == nil {
				return nil, ErrNotClientHello
			}
			return nil, malformed("bad record version inside ClientHello")
		}
		n := int(binary.BigEndian.Uint16(b[3:5]))
		if n == 0 || n > maxPlaintext {
			return nil, errors.Join(ErrMalformed, errors.New("bad record length"))
		}
		if len(b)-recordHeaderLen < n {
			return nil, ErrTruncated
		}
		frag := b[recordHeaderLen : recordHeaderLen+n]
		b = b[recordHeaderLen+n:]
		if msg == nil && need < 0 && len(frag) >= handshakeHeaderLen {
			// Fast path: the whole message is in the first record.
			if frag[0] != handshakeClientHello {
				return nil, ErrNotClientHello
			}
			l := int(frag[1])<<16 | int(frag[2])<<8 | int(frag[3])
			if l > maxHello {
				return nil, errors.Join(ErrMalformed, errors.New("handshake message too long"))
			}
			if l <= len(frag)-handshakeHeaderLen {
				return frag[handshakeHeaderLen : handshakeHeaderLen+l], nil
			}
		}
		msg = append(msg, frag...)
		if need < 0 && len(msg) >= handshakeHeaderLen {
			if msg[0] != handshakeClientHello {
				return nil, ErrNotClientHello
			}
			need = handshakeHeaderLen + (int(msg[1])<<16 | int(msg[2])<<8 | int(msg[3]))
			if need > maxHello+handshakeHeaderLen {
				return nil, errors.Join(ErrMalformed, errors.New("handshake message too long"))
			}
		}
		if need >= 0 && len(msg) >= need {
			return msg[handshakeHeaderLen:need], nil
		}
	}
}

// reader is a bounds-checked big-endian cursor; any short read sets ok to
// false and every later read returns zero values.
type reader struct {
	b  []byte
	ok bool
}

func (r *reader) u8() uint8 {
	if !r.ok || len(r.b) < 1 {
		r.ok = false
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) u16() uint16 {
	if !r.ok || len(r.b) < 2 {
		r.ok = false
		return 0
	}
	v := binary.BigEndian.Uint16(r.b)
	r.b = r.b[2:]
	return v
}

func (r *reader) bytes(n int) []byte {
	if !r.ok || len(r.b) < n {
		r.ok = false
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

// prefixed8 and prefixed16 read a length-prefixed vector as a sub-reader.
func (r *reader) prefixed8() reader  { return reader{b: r.bytes(int(r.u8())), ok: r.ok} }
func (r *reader) prefixed16() reader { return reader{b: r.bytes(int(r.u16())), ok: r.ok} }

// u16s reads a vector of 16-bit values that must fill r exactly.
func (r *reader) u16s() []uint16 {
	if !r.ok || len(r.b)%2 != 0 {
		r.ok = false
		return nil
	}
	out := make([]uint16, len(r.b)/2)
	for i := range out {
		out[i] = binary.BigEndian.Uint16(r.b[2*i:])
	}
	r.b = nil
	return out
}

func malformed(what string) error { return errors.Join(ErrMalformed, errors.New(what)) }

// parseClientHello parses a ClientHello body (RFC 8446 section 4.1.2, RFC
// 5246 section 7.4.1.2).
func parseClientHello(msg []byte) (Hello, error) {
	r := reader{b: msg, ok: true}
	h := Hello{Transport: TCP}
	h.Version = r.u16()
	r.bytes(32) // random
	sid := r.prefixed8()
	if len(sid.b) > 32 {
		return Hello{}, malformed("session id longer than 32 bytes")
	}
	cs := r.prefixed16()
	h.CipherSuites = cs.u16s()
	if !cs.ok {
		return Hello{}, malformed("odd cipher suite list")
	}
	comp := r.prefixed8()
	if !r.ok {
		return Hello{}, ErrTruncated
	}
	if len(comp.b) == 0 {
		return Hello{}, malformed("no compression method")
	}
	if len(r.b) == 0 {
		return h, nil // no extensions block: allowed before TLS 1.2
	}
	exts := r.prefixed16()
	if !r.ok {
		return Hello{}, ErrTruncated
	}
	if len(r.b) != 0 {
		return Hello{}, malformed("trailing bytes after extensions")
	}
	seen := make(map[uint16]bool, 24)
	for len(exts.b) > 0 {
		typ := exts.u16()
		data := exts.prefixed16()
		if !exts.ok {
			return Hello{}, malformed("truncated extension")
		}
		h.Extensions = append(h.Extensions, typ)
		if seen[typ] {
			continue // first occurrence wins for content
		}
		seen[typ] = true
		if err := parseExtension(&h, typ, data); err != nil {
			return Hello{}, err
		}
	}
	return h, nil
}

// parseExtension reads the content of the extensions the fingerprints use.
// The content must fill the extension exactly.
func parseExtension(h *Hello, typ uint16, d reader) error {
	switch typ {
	case extServerName:
		if len(d.b) == 0 {
			return nil // empty SNI extension: present, no name
		}
		list := d.prefixed16()
		if !d.ok || len(d.b) != 0 {
			return malformed("server_name")
		}
		for len(list.b) > 0 {
			nameType := list.u8()
			name := list.prefixed16()
			if !list.ok {
				return malformed("server_name entry")
			}
			if nameType == 0 && h.ServerName == "" {
				h.ServerName = string(name.b)
			}
		}
	case extALPN:
		list := d.prefixed16()
		if !d.ok || len(d.b) != 0 {
			return malformed("alpn")
		}
		for len(list.b) > 0 {
			p := list.prefixed8()
			if !list.ok {
				return malformed("alpn entry")
			}
			h.ALPN = append(h.ALPN, string(p.b))
		}
	case extSignatureAlgs:
		list := d.prefixed16()
		vs := list.u16s()
		if !d.ok || !list.ok || len(d.b) != 0 {
			return malformed("signature_algorithms")
		}
		h.SignatureSchemes = make([]tls.SignatureScheme, len(vs))
		for i, v := range vs {
			h.SignatureSchemes[i] = tls.SignatureScheme(v)
		}
	case extSupportedGroups:
		list := d.prefixed16()
		vs := list.u16s()
		if !d.ok || !list.ok || len(d.b) != 0 {
			return malformed("supported_groups")
		}
		h.SupportedCurves = make([]tls.CurveID, len(vs))
		for i, v := range vs {
			h.SupportedCurves[i] = tls.CurveID(v)
		}
	case extPointFormats:
		list := d.prefixed8()
		if !d.ok || len(d.b) != 0 {
			return malformed("ec_point_formats")
		}
		h.SupportedPoints = append([]uint8{}, list.b...)
	case extSupportedVersions:
		list := d.prefixed8()
		vs := list.u16s()
		if !d.ok || !list.ok || len(d.b) != 0 {
			return malformed("supported_versions")
		}
		h.SupportedVersions = vs
	}
	return nil
}
