package keys

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

func TestNew(t *testing.T) {
	key, sum := New()
	if !strings.HasPrefix(key, Prefix) || len(key) != len(Prefix)+43 {
		t.Fatalf("key %q: want og_ and 43 base64url characters (256 bits)", key)
	}
	want := sha256.Sum256([]byte(key))
	if sum != hex.EncodeToString(want[:]) {
		t.Fatalf("hash %s is not the SHA-256 of the key", sum)
	}
	other, _ := New()
	if other == key {
		t.Fatal("two keys are equal")
	}
	var h [32]byte
	hex.Decode(h[:], []byte(sum))
	if !Matches(key, [][32]byte{{}, h}) {
		t.Error("the key does not match its own hash")
	}
	if Matches(other, [][32]byte{h}) || Matches(key, nil) {
		t.Error("a key matched a hash that is not its own")
	}
}

// Authentication runs on every request: it must not allocate.
func TestMatchesDoesNotAllocate(t *testing.T) {
	key, hash := New()
	var h [32]byte
	hex.Decode(h[:], []byte(hash))
	hashes := [][32]byte{h}
	if n := testing.AllocsPerRun(100, func() {
		if !Matches(key, hashes) {
			t.Fatal("the key does not match its own hash")
		}
	}); n != 0 {
		t.Errorf("Matches allocates %v times per call", n)
	}
}
