package redistest

import "strings"

// Slots is the number of hash slots in a Redis Cluster.
const Slots = 16384

// Slot returns the cluster hash slot of key, as CLUSTER KEYSLOT does: CRC16
// (XMODEM) of the key, or of its hash tag (the part between the first "{"
// and the next "}", when that part is not empty), modulo 16384.
func Slot(key string) int {
	if open := strings.IndexByte(key, '{'); open >= 0 {
		if end := strings.IndexByte(key[open+1:], '}'); end > 0 {
			key = key[open+1 : open+1+end]
		}
	}
	return int(crc16(key) % Slots)
}

// crc16 is CRC-16/XMODEM (polynomial 0x1021, initial value 0), the
// checksum Redis Cluster specifies for key slots.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// SlotRange is an inclusive range of hash slots.
type SlotRange struct {
	Start, End int
}

// Contains reports whether slot is in the range.
func (r SlotRange) Contains(slot int) bool { return slot >= r.Start && slot <= r.End }
