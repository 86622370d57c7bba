package payload

import (
	"bytes"

	"github.com/rampartgw/rampart/detections"
)

// RuleMail is mail header or command injection: a line break followed by a
// recipient header and an address ("\nBcc: victim@example.com"), by an SMTP
// command ("\r\nRCPT TO:<x@example.com>", "\r\nMAIL FROM:"), or by an IMAP
// or POP3 command with its tag ("\r\nA1 SELECT INBOX", "\r\nRETR 1"): a
// value copied into a mail or a mail server session adds recipients or
// commands.
const RuleMail = "mail"

// mailAnalyzer reads the lines after the first of a value.
type mailAnalyzer struct{}

func (mailAnalyzer) Name() string { return "mail" }

func (mailAnalyzer) needs() uint64 { return clsNewline }

var (
	mailHeaders  = set("to", "cc", "bcc", "from", "reply-to", "sender", "return-path", "resent-to", "resent-cc", "resent-bcc")
	smtpCommands = []string{"mail from:", "rcpt to:", "helo ", "ehlo ", "vrfy ", "expn ", "auth login", "auth plain", "starttls"}
	imapCommands = set("LOGIN", "SELECT", "EXAMINE", "FETCH", "LIST", "LSUB", "CAPABILITY", "AUTHENTICATE", "CREATE",
		"DELETE", "RENAME", "STATUS", "APPEND", "STORE", "COPY", "UID", "LOGOUT", "SEARCH", "SUBSCRIBE", "EXPUNGE")
	pop3Commands = set("USER", "PASS", "RETR", "DELE", "STAT", "TOP", "UIDL", "APOP")
)

func (mailAnalyzer) Analyze(in *Input) (Finding, bool) {
	if !in.Has(clsNewline) || in.Field.Kind == detections.FieldBody || in.Binary() {
		return Finding{}, false
	}
	d := in.Decoded()
	for i := 0; i < len(d); i++ {
		if d[i] != '\n' && d[i] != '\r' {
			continue
		}
		j := i + 1
		for j < len(d) && (d[j] == '\n' || d[j] == '\r') {
			j++
		}
		if j >= len(d) {
			break
		}
		line := d[j:]
		if e := bytes.IndexAny(line, "\r\n"); e >= 0 {
			line = line[:e]
		}
		if mailLine(line) {
			return Finding{Rule: RuleMail, Score: ScoreCritical}, true
		}
		i = j - 1
	}
	return Finding{}, false
}

// mailLine reports a mail header with an address, an SMTP command, or a
// tagged IMAP or POP3 command (commands upper case, as clients send them).
func mailLine(l []byte) bool {
	k := 0
	for k < len(l) && (isAlnum(l[k]) || l[k] == '-') {
		k++
	}
	if k > 0 && k < len(l) && l[k] == ':' {
		var buf [32]byte
		name, ok := lowerName(&buf, l[:k])
		return ok && mailHeaders[str(name)] && bytes.IndexByte(l[k+1:], '@') >= 0
	}
	for _, c := range smtpCommands {
		if hasPrefixFold(l, c) {
			return true
		}
	}
	if k > 0 && pop3Commands[str(l[:k])] && (k == len(l) || l[k] == ' ') {
		return k < len(l) || str(l[:k]) == "STAT"
	}
	// "A001 SELECT INBOX": a tag, then a command.
	if k > 0 && k <= 8 && k < len(l) && l[k] == ' ' && hasDigit(l[:k]) {
		e := k + 1
		for e < len(l) && 'A' <= l[e] && l[e] <= 'Z' {
			e++
		}
		return imapCommands[str(l[k+1:e])] && (e == len(l) || l[e] == ' ')
	}
	return false
}

func hasDigit(b []byte) bool {
	for _, c := range b {
		if isDigit(c) {
			return true
		}
	}
	return false
}

var _ Analyzer = mailAnalyzer{}
