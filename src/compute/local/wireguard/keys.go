package main

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"

	"golang.org/x/crypto/curve25519"
)

// A WireGuard key in its usual form: base64 of 32 raw bytes.
func parseKey(s string) ([]byte, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil || len(raw) != 32 {
		return nil, fmt.Errorf("not a WireGuard key (base64 of 32 bytes)")
	}
	return raw, nil
}

func keyHex(raw []byte) string { return hex.EncodeToString(raw) }

func hexToBase64(h string) string {
	raw, err := hex.DecodeString(h)
	if err != nil {
		return ""
	}
	return base64.StdEncoding.EncodeToString(raw)
}

func publicKeyOf(priv []byte) (string, error) {
	pub, err := curve25519.X25519(priv, curve25519.Basepoint)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(pub), nil
}
