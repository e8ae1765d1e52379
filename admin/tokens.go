package admin

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
)

// Role is the permission level of an admin token.
type Role string

const (
	// RoleRead may use every GET route: stats, records, balance, daily
	// limit, current month and audit.
	RoleRead Role = "read"
	// RoleAdmin may also change data, such as POST .../balance.
	RoleAdmin Role = "admin"
)

// Token is one accepted admin token. Name appears in logs and in the audit
// in place of the secret.
type Token struct {
	Name   string
	Role   Role
	Secret string
}

// DefaultTokenName is the name of the token given by --admin-token.
const DefaultTokenName = "default"

// Limits of a tokens file.
const (
	MaxTokensFileSize = 64 << 10
	maxTokens         = 1000
	maxTokenNameLen   = 64
	maxSecretLen      = 512
)

// ParseTokens parses a tokens file: one token per line as three fields
// separated by spaces or tabs, "name role secret". Blank lines and lines
// starting with # are ignored. A name is 1 to 64 letters, digits, '.',
// '_' or '-'. The role is read or admin. A secret is 16 to 512 printable
// ASCII characters without spaces. Names and secrets must be unique.
// Errors name the line and never contain a secret.
func ParseTokens(data []byte) ([]Token, error) {
	if len(data) > MaxTokensFileSize {
		return nil, fmt.Errorf("tokens file is larger than %d bytes", MaxTokensFileSize)
	}
	var tokens []Token
	names := map[string]int{}
	secrets := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), MaxTokensFileSize)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 3 {
			return nil, fmt.Errorf("tokens file line %d: has %d fields, expected 3: name role token", n, len(fields))
		}
		t := Token{Name: fields[0], Role: Role(fields[1]), Secret: fields[2]}
		if err := checkToken(t); err != nil {
			return nil, fmt.Errorf("tokens file line %d: %w", n, err)
		}
		if prev, ok := names[t.Name]; ok {
			return nil, fmt.Errorf("tokens file line %d: name %q is already used on line %d", n, t.Name, prev)
		}
		if prev, ok := secrets[t.Secret]; ok {
			return nil, fmt.Errorf("tokens file line %d: the token is the same as on line %d; give each name its own token", n, prev)
		}
		names[t.Name], secrets[t.Secret] = n, n
		tokens = append(tokens, t)
		if len(tokens) > maxTokens {
			return nil, fmt.Errorf("tokens file has more than %d tokens", maxTokens)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read tokens file: %w", err)
	}
	if len(tokens) == 0 {
		return nil, fmt.Errorf("tokens file has no token: add lines such as \"ops admin %s\"", strings.Repeat("x", 32))
	}
	return tokens, nil
}

// checkToken validates one token's name, role and secret. The error never
// contains the secret.
func checkToken(t Token) error {
	if t.Name == "" || len(t.Name) > maxTokenNameLen || strings.IndexFunc(t.Name, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-')
	}) >= 0 {
		return fmt.Errorf("invalid token name %q: use 1 to %d letters, digits, '.', '_' or '-'", shorten(t.Name, 80), maxTokenNameLen)
	}
	if t.Role != RoleRead && t.Role != RoleAdmin {
		return fmt.Errorf("token %q has invalid role %q: expected read or admin", t.Name, shorten(string(t.Role), 40))
	}
	if len(t.Secret) < minTokenLength || len(t.Secret) > maxSecretLen {
		return fmt.Errorf("token %q is %d characters: expected %d to %d, for example the output of: openssl rand -hex 32", t.Name, len(t.Secret), minTokenLength, maxSecretLen)
	}
	for i := 0; i < len(t.Secret); i++ {
		if c := t.Secret[i]; c <= ' ' || c > '~' {
			return fmt.Errorf("token %q contains a character that is not printable ASCII", t.Name)
		}
	}
	return nil
}
