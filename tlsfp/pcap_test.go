package tlsfp

// A small pcap/pcapng reader and TCP reassembler for the FoxIO vectors. It
// handles what the vectors use (Ethernet with VLAN tags, BSD loopback, raw
// IP, Linux cooked v1/v2; IPv4 and IPv6; pcap in either byte order and
// pcapng sections) and nothing more: it is test code.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
)

type rawPacket struct {
	link uint16
	data []byte
}

// readCapture reads every packet of a pcap or pcapng file.
func readCapture(path string) ([]rawPacket, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) < 24 {
		return nil, errors.New("capture too short")
	}
	switch m := binary.LittleEndian.Uint32(b); m {
	case 0x0a0d0d0a:
		return readPcapng(b)
	case 0xa1b2c3d4, 0xa1b23c4d:
		return readPcap(b, binary.LittleEndian)
	case 0xd4c3b2a1, 0x4d3cb2a1:
		return readPcap(b, binary.BigEndian)
	default:
		return nil, fmt.Errorf("unknown capture magic %#x", m)
	}
}

func readPcap(b []byte, bo binary.ByteOrder) ([]rawPacket, error) {
	link := uint16(bo.Uint32(b[20:24]))
	var out []rawPacket
	for b = b[24:]; len(b) > 0; {
		if len(b) < 16 {
			return nil, errors.New("truncated pcap record header")
		}
		n := int(bo.Uint32(b[8:12]))
		if len(b) < 16+n {
			return nil, errors.New("truncated pcap record")
		}
		out = append(out, rawPacket{link: link, data: b[16 : 16+n]})
		b = b[16+n:]
	}
	return out, nil
}

func readPcapng(b []byte) ([]rawPacket, error) {
	var (
		bo    binary.ByteOrder = binary.LittleEndian
		links []uint16
		snaps []uint32
		out   []rawPacket
	)
	for len(b) > 0 {
		if len(b) < 12 {
			return nil, errors.New("truncated pcapng block")
		}
		typ := bo.Uint32(b)
		if typ == 0x0a0d0d0a { // section header: the byte order may change
			switch binary.LittleEndian.Uint32(b[8:]) {
			case 0x1a2b3c4d:
				bo = binary.LittleEndian
			case 0x4d3c2b1a:
				bo = binary.BigEndian
			default:
				return nil, errors.New("bad pcapng byte-order magic")
			}
			links, snaps = nil, nil
		}
		n := int(bo.Uint32(b[4:]))
		if n < 12 || n%4 != 0 || n > len(b) {
			return nil, fmt.Errorf("bad pcapng block length %d", n)
		}
		body := b[8 : n-4]
		switch typ {
		case 1: // interface description
			if len(body) < 8 {
				return nil, errors.New("short IDB")
			}
			links = append(links, bo.Uint16(body))
			snaps = append(snaps, bo.Uint32(body[4:]))
		case 6, 2: // enhanced packet, obsolete packet
			if len(body) < 20 {
				return nil, errors.New("short packet block")
			}
			var ifc int
			if typ == 6 {
				ifc = int(bo.Uint32(body))
			} else {
				ifc = int(bo.Uint16(body))
			}
			capLen := int(bo.Uint32(body[12:]))
			if ifc >= len(links) || 20+capLen > len(body) {
				return nil, errors.New("bad packet block")
			}
			out = append(out, rawPacket{link: links[ifc], data: body[20 : 20+capLen]})
		case 3: // simple packet
			if len(links) == 0 || len(body) < 4 {
				return nil, errors.New("bad simple packet block")
			}
			capLen := int(bo.Uint32(body))
			if snaps[0] != 0 {
				capLen = min(capLen, int(snaps[0]))
			}
			capLen = min(capLen, len(body)-4)
			out = append(out, rawPacket{link: links[0], data: body[4 : 4+capLen]})
		}
		b = b[n:]
	}
	return out, nil
}

type segment struct {
	src, dst netip.AddrPort
	seq      uint32
	syn, ack bool
	payload  []byte
}

// decodeTCP returns the TCP segment in a packet, ok=false for anything else.
func decodeTCP(p rawPacket) (segment, bool) {
	d := p.data
	var ethType uint16
	switch p.link {
	case 1: // Ethernet
		if len(d) < 14 {
			return segment{}, false
		}
		ethType, d = binary.BigEndian.Uint16(d[12:]), d[14:]
		for (ethType == 0x8100 || ethType == 0x88a8) && len(d) >= 4 {
			ethType, d = binary.BigEndian.Uint16(d[2:]), d[4:]
		}
	case 0, 108: // BSD loopback: 4-byte address family
		if len(d) < 4 {
			return segment{}, false
		}
		af := binary.LittleEndian.Uint32(d)
		if p.link == 108 {
			af = binary.BigEndian.Uint32(d)
		}
		d = d[4:]
		switch af {
		case 2:
			ethType = 0x0800
		case 24, 28, 30:
			ethType = 0x86dd
		}
	case 101, 12, 228, 229: // raw IP
		if len(d) > 0 && d[0]>>4 == 6 {
			ethType = 0x86dd
		} else {
			ethType = 0x0800
		}
	case 113: // Linux cooked
		if len(d) < 16 {
			return segment{}, false
		}
		ethType, d = binary.BigEndian.Uint16(d[14:]), d[16:]
	case 276: // Linux cooked v2
		if len(d) < 20 {
			return segment{}, false
		}
		ethType, d = binary.BigEndian.Uint16(d), d[20:]
	default:
		return segment{}, false
	}
	var src, dst netip.Addr
	switch ethType {
	case 0x0800:
		if len(d) < 20 || d[0]>>4 != 4 {
			return segment{}, false
		}
		ihl := int(d[0]&0xf) * 4
		total := int(binary.BigEndian.Uint16(d[2:]))
		if d[9] != 6 || ihl < 20 || total < ihl || total > len(d) {
			return segment{}, false
		}
		if binary.BigEndian.Uint16(d[6:])&0x3fff != 0 {
			return segment{}, false // fragment
		}
		src = netip.AddrFrom4([4]byte(d[12:16]))
		dst = netip.AddrFrom4([4]byte(d[16:20]))
		d = d[ihl:total]
	case 0x86dd:
		if len(d) < 40 {
			return segment{}, false
		}
		plen := int(binary.BigEndian.Uint16(d[4:]))
		next := d[6]
		src = netip.AddrFrom16([16]byte(d[8:24]))
		dst = netip.AddrFrom16([16]byte(d[24:40]))
		if 40+plen > len(d) {
			return segment{}, false
		}
		d = d[40 : 40+plen]
		for next == 0 || next == 43 || next == 60 {
			if len(d) < 8 {
				return segment{}, false
			}
			l := 8 + int(d[1])*8
			if l > len(d) {
				return segment{}, false
			}
			next, d = d[0], d[l:]
		}
		if next != 6 {
			return segment{}, false
		}
	default:
		return segment{}, false
	}
	if len(d) < 20 {
		return segment{}, false
	}
	off := int(d[12]>>4) * 4
	if off < 20 || off > len(d) {
		return segment{}, false
	}
	flags := d[13]
	return segment{
		src:     netip.AddrPortFrom(src, binary.BigEndian.Uint16(d)),
		dst:     netip.AddrPortFrom(dst, binary.BigEndian.Uint16(d[2:])),
		seq:     binary.BigEndian.Uint32(d[4:]),
		syn:     flags&0x02 != 0,
		ack:     flags&0x10 != 0,
		payload: d[off:],
	}, true
}

// flow is one direction of one TCP connection.
type flow struct {
	src, dst netip.AddrPort
	base     uint32 // sequence number of the first payload byte
	haveBase bool
	segs     map[uint32][]byte // relative offset -> payload
}

// data returns the contiguous bytes from offset 0, stopping at a gap.
func (f *flow) data() []byte {
	offs := make([]uint32, 0, len(f.segs))
	for o := range f.segs {
		offs = append(offs, o)
	}
	slices.Sort(offs)
	var out []byte
	for _, o := range offs {
		p := f.segs[o]
		end := uint64(o) + uint64(len(p))
		switch {
		case uint64(len(out)) < uint64(o):
			return out // gap
		case end > uint64(len(out)):
			out = append(out, p[uint64(len(out))-uint64(o):]...)
		}
	}
	return out
}

// packetInfo says where a packet went in tcpFlows (f is nil for non-TCP).
type packetInfo struct {
	f   *flow
	rel uint32
	syn bool
}

// tcpFlows reassembles every direction of every TCP connection, in order of
// first appearance. A SYN on a known tuple starts a new connection.
func tcpFlows(pkts []rawPacket) ([]*flow, []packetInfo) {
	var all []*flow
	info := make([]packetInfo, len(pkts))
	cur := map[[2]netip.AddrPort]*flow{}
	for i, p := range pkts {
		s, ok := decodeTCP(p)
		if !ok {
			continue
		}
		key := [2]netip.AddrPort{s.src, s.dst}
		f := cur[key]
		if s.syn {
			if f == nil || f.haveBase && f.base != s.seq+1 {
				f = &flow{src: s.src, dst: s.dst, segs: map[uint32][]byte{}}
				cur[key] = f
				all = append(all, f)
			}
			f.base, f.haveBase = s.seq+1, true
			info[i] = packetInfo{f: f, syn: true}
			continue
		}
		if f == nil {
			f = &flow{src: s.src, dst: s.dst, segs: map[uint32][]byte{}}
			cur[key] = f
			all = append(all, f)
		}
		if len(s.payload) == 0 {
			continue
		}
		if !f.haveBase {
			f.base, f.haveBase = s.seq, true
		}
		rel := s.seq - f.base
		if rel > 1<<30 {
			continue // before the base: retransmitted SYN data or noise
		}
		info[i] = packetInfo{f: f, rel: rel}
		if old, ok := f.segs[rel]; !ok || len(s.payload) > len(old) {
			f.segs[rel] = s.payload
		}
	}
	return all, info
}

// helloRecord is one ClientHello found in a client byte stream.
type helloRecord struct {
	records []byte // the TLS records carrying it, as sent
	message []byte // the handshake message, header included
	end     int    // stream offset just after its last record
}

// clientHellos finds the plaintext ClientHellos at the start of a client
// stream (two when the server sent a HelloRetryRequest). Bytes before the
// first TLS record (a SOCKS or CONNECT preamble) are skipped by searching for
// a handshake record that carries a ClientHello.
func clientHellos(data []byte) []helloRecord {
	start := -1
	for i := 0; i+9 < len(data); i++ {
		if data[i] == 22 && data[i+1] == 3 && data[i+2] <= 4 && data[i+5] == 1 {
			if _, err := Parse(data[i:]); err == nil {
				start = i
				break
			}
		}
	}
	if start < 0 {
		return nil
	}
	var (
		out      []helloRecord
		hs       []byte
		msgStart = -1
	)
	for off := start; off+5 <= len(data); {
		typ := data[off]
		n := int(binary.BigEndian.Uint16(data[off+3:]))
		if data[off+1] != 3 || off+5+n > len(data) {
			break
		}
		next := off + 5 + n
		switch typ {
		case 20: // change_cipher_spec (TLS 1.3 compatibility mode)
		case 22:
			if msgStart < 0 {
				msgStart = off
			}
			hs = append(hs, data[off+5:next]...)
			for len(hs) >= 4 {
				l := 4 + (int(hs[1])<<16 | int(hs[2])<<8 | int(hs[3]))
				if len(hs) < l {
					break
				}
				msg := hs[:l]
				if msg[0] != 1 {
					return out
				}
				if _, err := Parse(msg); err != nil {
					return out // encrypted handshake after change_cipher_spec
				}
				out = append(out, helloRecord{records: data[msgStart:next], message: bytes.Clone(msg), end: next})
				hs = hs[l:]
				msgStart = -1
				if len(hs) > 0 {
					msgStart = off
				}
			}
		default:
			return out
		}
		off = next
	}
	return out
}
