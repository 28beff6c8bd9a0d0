// Package keys makes client keys and checks them against the hashes kept in
// the config. Only hashes are ever stored, so a leaked config file does not
// leak the keys.
package keys

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"unsafe"
)

// Prefix marks outgate keys, so secret scanners and people recognise them.
const Prefix = "og_"

// New returns a fresh key with 256 bits of entropy and its SHA-256 in hex.
func New() (key, sha256Hex string) {
	var b [32]byte
	// crypto/rand.Read never fails on supported platforms (Go 1.24+).
	rand.Read(b[:])
	key = Prefix + base64.RawURLEncoding.EncodeToString(b[:])
	return key, Hash(key)
}

// Hash is the hex SHA-256 of a key, as written in key_sha256.
func Hash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// Sum is the SHA-256 of key. The key's bytes are hashed in place: a
// []byte(key) copy would be an allocation on every authenticated request.
func Sum(key string) [32]byte {
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(key), len(key)))
}

// Matches reports in constant time whether key hashes to any of hashes.
// Every hash is compared, so timing does not tell which one matched.
func Matches(key string, hashes [][32]byte) bool {
	return MatchesSum(Sum(key), hashes)
}

// MatchesSum is Matches for a key already hashed with Sum.
func MatchesSum(sum [32]byte, hashes [][32]byte) bool {
	ok := 0
	for i := range hashes {
		ok |= subtle.ConstantTimeCompare(sum[:], hashes[i][:])
	}
	return ok == 1
}
