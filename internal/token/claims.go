package token

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode"

	"github.com/golang-jwt/jwt/v5"
)

// lookup finds a claim by its name: the top-level key of that exact name
// first (https://example.com/roles is one key), then the name as a dotted
// path through nested objects (redis_ws.subscribe is "subscribe" inside
// "redis_ws", as Mercure nests mercure.subscribe).
func lookup(claims jwt.MapClaims, name string) (any, bool) {
	if v, ok := claims[name]; ok {
		return v, true
	}
	var cur any = map[string]any(claims)
	for part := range strings.SplitSeq(name, ".") {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = obj[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// stringClaim is a claim that must be a string; "" when absent.
func stringClaim(claims jwt.MapClaims, name string) (string, error) {
	v, ok := lookup(claims, name)
	if !ok {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("claim %s: %w", name, errClaimType)
	}
	return s, checkValue(name, s)
}

// listClaim is a claim holding channel patterns: an array of strings, or
// one string; nil when absent.
func listClaim(claims jwt.MapClaims, name string) ([]string, error) {
	v, ok := lookup(claims, name)
	if !ok {
		return nil, nil
	}
	var list []string
	switch v := v.(type) {
	case string:
		list = []string{v}
	case []any:
		list = make([]string, 0, len(v))
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("claim %s: %w", name, errClaimType)
			}
			list = append(list, s)
		}
	default:
		return nil, fmt.Errorf("claim %s: %w", name, errClaimType)
	}
	for _, s := range list {
		if s == "" {
			return nil, fmt.Errorf("claim %s holds an empty pattern: %w", name, errClaimType)
		}
		if err := checkValue(name, s); err != nil {
			return nil, err
		}
	}
	return list, nil
}

// scalarClaim is a claim that must be a string or a number, as text.
func scalarClaim(claims jwt.MapClaims, name string) (string, bool, error) {
	v, ok := lookup(claims, name)
	if !ok {
		return "", false, nil
	}
	switch v := v.(type) {
	case string:
		return v, true, checkValue(name, v)
	case json.Number:
		return v.String(), true, nil
	}
	return "", false, fmt.Errorf("claim %s: %w", name, errClaimType)
}

// checkValue refuses control characters: a channel name cannot hold one,
// the list separator is one, and a header or a log line must not get one.
func checkValue(name, s string) error {
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return fmt.Errorf("claim %s: %w", name, errControl)
	}
	return nil
}
