/*
Copyright 2026 The natsforge Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package pki

import (
	"crypto/x509/pkix"
	"fmt"
	"strings"
)

// Identity is what a certificate user's client certificate must carry so that
// the broker's verify_and_map maps it to the user named by tlsIdentity.
type Identity struct {
	Subject pkix.Name
	Emails  []string
}

// ParseIdentity reads a tlsIdentity: an email address (the certificate gets it
// as an email SAN, which verify_and_map tries first, and commonName as its
// subject), or an RFC 2253 subject such as "CN=alice,OU=dev,O=acme" (the
// certificate gets exactly that subject and no SANs). Attribute types are
// those crypto/x509 names: CN, O, OU, L, ST, C, STREET, POSTALCODE,
// SERIALNUMBER. A "\" escapes the next character.
func ParseIdentity(identity, commonName string) (Identity, error) {
	if !strings.Contains(identity, "=") {
		if !strings.Contains(identity, "@") {
			return Identity{}, fmt.Errorf("tlsIdentity %q is neither an email address nor a subject", identity)
		}
		return Identity{Subject: pkix.Name{CommonName: commonName}, Emails: []string{identity}}, nil
	}
	var n pkix.Name
	for _, rdn := range splitUnescaped(identity, ',') {
		typ, value, ok := strings.Cut(rdn, "=")
		typ = strings.ToUpper(strings.TrimSpace(typ))
		value = unescape(strings.TrimSpace(value))
		if !ok || value == "" {
			return Identity{}, fmt.Errorf("tlsIdentity: %q is not TYPE=value", rdn)
		}
		switch typ {
		case "CN":
			if n.CommonName != "" {
				return Identity{}, fmt.Errorf("tlsIdentity: CN given twice")
			}
			n.CommonName = value
		case "SERIALNUMBER":
			n.SerialNumber = value
		case "O":
			n.Organization = append(n.Organization, value)
		case "OU":
			n.OrganizationalUnit = append(n.OrganizationalUnit, value)
		case "L":
			n.Locality = append(n.Locality, value)
		case "ST":
			n.Province = append(n.Province, value)
		case "C":
			n.Country = append(n.Country, value)
		case "STREET":
			n.StreetAddress = append(n.StreetAddress, value)
		case "POSTALCODE":
			n.PostalCode = append(n.PostalCode, value)
		default:
			return Identity{}, fmt.Errorf("tlsIdentity: attribute type %q is not one of CN, O, OU, L, ST, C, STREET, POSTALCODE, SERIALNUMBER", typ)
		}
	}
	return Identity{Subject: n}, nil
}

func splitUnescaped(s string, sep byte) []string {
	var parts []string
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case sep:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

func unescape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
