package jwt

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
)

// builtinSecrets are placeholder secrets that end up in production because
// they are what a tutorial, a sample config or a framework scaffold
// suggests. The list is ours, written from well-known defaults (the
// jwt.io debugger's sample secret, express and jsonwebtoken README
// examples, "change me" placeholders); it copies no third-party wordlist
// (see research/constraints.md). Operators add a real list through
// weak_secret.wordlist_file.
var builtinSecrets = []string{
	"", // blank password, CVE-2019-20933 / CVE-2020-28637
	"secret", "Secret", "SECRET", "secret1", "secret123", "secretkey", "secret-key", "secret_key",
	"SECRET_KEY", "SecretKey", "mysecret", "my-secret", "my_secret", "mysecretkey", "my-secret-key",
	"my_secret_key", "mySecretKey", "supersecret", "super-secret", "super_secret", "topsecret",
	"s3cr3t", "s3cret", "notasecret", "not-a-secret", "shhhhh", "shhhhhhared-secret", "keyboard cat",
	"your-256-bit-secret", "your-384-bit-secret", "your-512-bit-secret", "your_jwt_secret",
	"your-jwt-secret", "your-secret-key", "your_secret_key", "yoursecretkey", "your-secret",
	"jwt", "JWT", "jwtsecret", "jwt-secret", "jwt_secret", "JWT_SECRET", "jwtSecret", "jwtkey",
	"jwt-key", "jwt_key", "jwt-secret-key", "jwt_secret_key", "token", "tokensecret", "token-secret",
	"key", "private", "privatekey", "private-key", "hmac", "hmacsecret", "hmac-secret", "signing-key",
	"signingkey", "changeme", "change-me", "change_me", "changeit", "change-this", "changethis",
	"change-this-secret", "replace-me", "replaceme", "todo", "placeholder", "default", "defaultsecret",
	"default-secret", "password", "Password", "passw0rd", "pass", "admin", "administrator", "root",
	"test", "testing", "test-secret", "testsecret", "dev", "development", "devsecret", "dev-secret",
	"local", "localhost", "demo", "example", "sample", "hello", "helloworld", "hello-world",
	"123", "1234", "12345", "123456", "1234567", "12345678", "123456789", "1234567890",
	"qwerty", "abc123", "letmein", "welcome", "null", "none", "undefined", "nil", "0", "1",
}

// maxSecretBytes bounds one wordlist entry; longer lines are skipped.
const maxSecretBytes = 1024

// secretList is the deduplicated list the auditor tries, with an index
// from SecretID to entry for per-token confirmation.
type secretList struct {
	words [][]byte
	index map[string]int
}

func newSecretList(builtin bool, file string, maxEntries int) (*secretList, error) {
	l := &secretList{index: make(map[string]int)}
	if builtin {
		for _, s := range builtinSecrets {
			l.add([]byte(s))
		}
	}
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("opening wordlist: %w", err)
		}
		defer f.Close()
		if err := l.read(f, maxEntries); err != nil {
			return nil, fmt.Errorf("reading wordlist %s: %w", file, err)
		}
	}
	return l, nil
}

// read adds one secret per line, exactly as written but for the line
// ending; empty and overlong lines are skipped.
func (l *secretList) read(r io.Reader, maxEntries int) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 64<<10)
	added := 0
	for sc.Scan() {
		line := bytes.TrimSuffix(sc.Bytes(), []byte("\r"))
		if len(line) == 0 || len(line) > maxSecretBytes {
			continue
		}
		if added >= maxEntries {
			return fmt.Errorf("more than %d entries (max_wordlist_entries)", maxEntries)
		}
		if l.add(bytes.Clone(line)) {
			added++
		}
	}
	return sc.Err()
}

func (l *secretList) add(w []byte) bool {
	id := Identity(string(w))
	if _, dup := l.index[id]; dup {
		return false
	}
	l.index[id] = len(l.words)
	l.words = append(l.words, w)
	return true
}

// lookup returns the secret of a SecretID, if this replica's list has it.
func (l *secretList) lookup(id string) ([]byte, bool) {
	i, ok := l.index[id]
	if !ok {
		return nil, false
	}
	return l.words[i], true
}

func (l *secretList) contains(secret []byte) bool {
	_, ok := l.index[Identity(string(secret))]
	return ok
}
