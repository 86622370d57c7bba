// Package ipfeed subscribes the gateway to public IP blocklists: it
// fetches them, parses them, merges them into one immutable matcher and
// keeps them fresh across a fleet, so that each feed is downloaded once
// per refresh however many replicas run.
//
// It imports nothing from the rest of the repository. The ip detection
// asks Manager.Match; the store package implements Lease and SetStore on
// Redis; cmd builds the Manager, calls Sync before serving and runs Run.
//
// # Formats
//
// Parse reads, line by line (FormatAuto accepts all of them):
//
//	# plain (FormatPlain): one address, CIDR or range per line; '#' and ';'
//	# start comments; fields after the first are ignored
//	192.0.2.1
//	198.51.100.0/24   ; comment
//	203.0.113.10-203.0.113.20
//	2001:db8::/32,extra
//
//	# FireHOL .netset / .ipset (FormatNetset): '#' header, one entry a line
//	10.0.0.0/8
//	192.0.2.77
//
//	; Spamhaus DROP text (FormatSpamhaus)
//	192.0.2.0/24 ; SBL000001
//
//	{"cidr":"192.0.2.0/24","sblid":"SBL000001","rir":"arin"}
//	{"type":"metadata","timestamp":1704067200,"records":1}
//
// The last two lines are Spamhaus's JSON-lines files (drop_v4.json,
// drop_v6.json); the metadata record count is checked.
//
// IPv4 and IPv6 are both read; IPv4-mapped IPv6 (::ffff:192.0.2.1) is
// unmapped; host bits are masked (192.0.2.7/24 is 192.0.2.0/24, counted
// in Masked). Overlapping and adjacent entries are merged into ranges.
//
// # Failure policy
//
// An invalid line is counted and reported with its line number
// (ParseResult.Problems, Status.Problems) and skipped; so is a line over
// MaxLineBytes, a zoned address and a /0. A feed is refused as a whole,
// keeping the previous list, when nothing valid remains (ErrNoEntries:
// an empty download or an HTML error page), when more lines are invalid
// than valid (ErrMostlyInvalid: probably the wrong format), when it covers
// more than half of IPv4 or of 2000::/3 (ErrTooBroad: no honest feed
// does, and applying it would block everyone), when it is larger than
// max_bytes (ErrTooLarge, checked after decompression too), and when the
// download fails (status, timeout, TLS, redirects). Past max_entries the
// first entries are kept and the rest counted as Dropped. No failure ever
// empties a list that is in use.
//
// # Fetching
//
// Feeds come from a file or an https URL (http only with
// Config.AllowHTTP, for tests). Downloads are conditional
// (If-None-Match, If-Modified-Since, with the validators kept in Meta),
// accept gzip, follow at most MaxRedirects redirects and never from https
// to http, and are bounded by the feed's timeout and max_bytes. Errors
// and Meta.Source never hold a URL's query or userinfo, where API keys
// live. A file counts as unchanged while its size and mtime are.
//
// # Fleet coordination
//
// See Manager. The stored set is the binary encoding of MarshalBinary
// (versioned, CRC-32C checked, 2 to 10 bytes per IPv4 range); DecodeSet
// rejects anything else with ErrCorrupt and never panics. A replica that
// cannot reach the store or the lease fetches for itself, at most once
// per refresh, until the store is back.
//
// # Intended use in the gateway
//
// Exempt always wins over a feed: the gateway skips the chain for an
// exempt client, so a feed listing an operator's own office or monitoring
// addresses cannot lock them out. After that, a feed hit blocks (an
// enforce feed) or records "would block" (a monitor feed); when several
// feeds list an address, an enforce feed is reported first. Feeds do not
// add clients to the shared blocklist: the list is already shared, and an
// entry removed upstream must stop blocking at the next refresh.
package ipfeed
