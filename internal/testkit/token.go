package testkit

import (
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// TestSecret is an HMAC secret of 32 bytes, HS256's minimum.
const TestSecret = "0123456789abcdef0123456789abcdef"

// HS256 is a token of claims signed with TestSecret.
func HS256(t testing.TB, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(TestSecret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}
