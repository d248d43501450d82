package conf

import (
	"crypto/tls"
	"sort"
	"strconv"
	"strings"
)

// The tls {} block, top-level (clients and HTTPS monitoring) and cluster.tls
// (routes): decoding, validation and rendering, by nats-server's rules
// (server/opts.go parseTLS and GenTLSConfig). Every key of the block is
// either read or refused: an ignored TLS setting would be a weaker broker
// than the file says, so unknown and unsupported keys are errors, as they are
// to nats-server.

// tlsFields is what each key of a tls block sets (see conflicts).
var tlsFields = map[string][]string{
	"cert_file": {"cert_file"}, "key_file": {"key_file"}, "ca_file": {"ca_file"},
	"verify": {"verify"}, "verify_and_map": {"verify_and_map"}, "timeout": {"timeout"},
	"handshake_first": {"handshake_first"}, "first": {"handshake_first"}, "immediate": {"handshake_first"},
	"cipher_suites": {"cipher_suites"}, "curve_preferences": {"curve_preferences"},
	"min_version": {"min_version"},
}

// TLSCipherSuites are the names cipher_suites accepts: Go's secure suites,
// as nats-server (which refuses the insecure ones unless told otherwise).
func TLSCipherSuites() []string {
	var names []string
	for _, cs := range tls.CipherSuites() {
		names = append(names, cs.Name)
	}
	return names
}

// tlsCurves are the names curve_preferences accepts, nats-server's.
var tlsCurves = map[string]tls.CurveID{
	"SecP384r1MLKEM1024": tls.SecP384r1MLKEM1024,
	"SecP256r1MLKEM768":  tls.SecP256r1MLKEM768,
	"X25519MLKEM768":     tls.X25519MLKEM768,
	"X25519":             tls.X25519,
	"CurveP256":          tls.CurveP256,
	"CurveP384":          tls.CurveP384,
	"CurveP521":          tls.CurveP521,
}

// TLSCurve is the curve named by a curve_preferences entry.
func TLSCurve(name string) (tls.CurveID, bool) {
	c, ok := tlsCurves[name]
	return c, ok
}

// TLSCipherSuite is the ID of a cipher_suites entry.
func TLSCipherSuite(name string) (uint16, bool) {
	for _, cs := range tls.CipherSuites() {
		if cs.Name == name {
			return cs.ID, true
		}
	}
	return 0, false
}

// TLSMinVersion is the tls.Version* of min_version; "" is TLS 1.2.
func TLSMinVersion(v string) (uint16, bool) {
	switch v {
	case "", "1.2":
		return tls.VersionTLS12, true
	case "1.3":
		return tls.VersionTLS13, true
	}
	return 0, false
}

func (d *decoder) tls(n *node, at string) (*TLS, error) {
	if err := d.want(n, at, kindMap); err != nil {
		return nil, err
	}
	if err := d.conflicts(n, at, tlsFields); err != nil {
		return nil, err
	}
	t := &TLS{}
	for _, e := range n.effective() {
		v, key := e.val, path(at, e.key)
		var err error
		switch k := strings.ToLower(e.key); k {
		case "cert_file":
			t.CertFile, err = d.str(v, key)
		case "key_file":
			t.KeyFile, err = d.str(v, key)
		case "ca_file":
			t.CAFile, err = d.str(v, key)
		case "verify":
			t.Verify, err = d.boolean(v, key)
		case "verify_and_map":
			t.VerifyAndMap, err = d.boolean(v, key)
		case "timeout":
			t.Timeout, err = d.seconds(v, key)
		case "handshake_first", "first", "immediate":
			t.HandshakeFirst, err = d.handshakeFirst(v, key)
		case "cipher_suites":
			t.CipherSuites, err = d.names(v, key)
		case "curve_preferences":
			t.CurvePreferences, err = d.names(v, key)
		case "min_version":
			t.MinVersion, err = d.str(v, key)
			if err == nil && t.MinVersion == "" {
				err = d.fail(v, key, "empty TLS version (want \"1.2\" or \"1.3\")")
			}
		default:
			// nats-server stops at the first unknown tls key, and makes no
			// exception for keys that define variables.
			err = tlsBlock.keyError(e, key)
		}
		if err != nil {
			return nil, err
		}
	}
	return t, nil
}

// handshakeFirst is a boolean, or nats-server's strings for one. Its
// "auto" and fallback-delay forms (a plain client still served after a
// delay) are not supported.
func (d *decoder) handshakeFirst(n *node, key string) (bool, error) {
	switch n.kind {
	case kindBool:
		return n.bool, nil
	case kindString:
		switch strings.ToLower(n.str) {
		case "true", "on":
			return true, nil
		case "false", "off":
			return false, nil
		}
		return false, d.fail(n, key, "%q is not supported (want true or false; no fallback to plain clients)", n.str)
	}
	return false, d.fail(n, key, "expected a boolean, got %s", n.kind)
}

// names is cipher_suites or curve_preferences: a non-empty list of strings
// (nats-server refuses an empty one).
func (d *decoder) names(n *node, at string) ([]string, error) {
	if err := d.want(n, at, kindArray); err != nil {
		return nil, err
	}
	if len(n.items) == 0 {
		return nil, d.fail(n, at, "cannot be empty")
	}
	var out []string
	for i, item := range n.items {
		s, err := d.str(item, at+"["+strconv.Itoa(i)+"]")
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// tls checks a tls block; routes is true for cluster.tls.
func (v *validator) tls(key string, t *TLS, routes bool) {
	if t == nil {
		return
	}
	if t.CertFile == "" {
		v.add(key+".cert_file", "a tls block needs a certificate (cert_file)")
	}
	if t.KeyFile == "" {
		v.add(key+".key_file", "a tls block needs a private key (key_file)")
	}
	v.nonNegative(key+".timeout", t.Timeout)
	for i, c := range t.CipherSuites {
		if _, ok := TLSCipherSuite(c); !ok {
			v.add(key+".cipher_suites["+strconv.Itoa(i)+"]", "unknown or insecure cipher suite %q", c)
		}
	}
	for i, c := range t.CurvePreferences {
		if _, ok := TLSCurve(c); !ok {
			v.add(key+".curve_preferences["+strconv.Itoa(i)+"]", "unknown curve %q (known: %s)", c, strings.Join(sortedKeys(tlsCurves), ", "))
		}
	}
	if _, ok := TLSMinVersion(t.MinVersion); !ok {
		v.add(key+".min_version", "unsupported TLS version %q (want \"1.2\" or \"1.3\")", t.MinVersion)
	}
	if routes {
		// nats-server maps a route certificate to the cluster user, and does
		// no handshake-first on routes; neither is modelled here.
		if t.VerifyAndMap {
			v.add(key+".verify_and_map", "not supported for routes")
		}
		if t.HandshakeFirst {
			v.add(key+".handshake_first", "not supported for routes")
		}
	}
}

// monitoringTLS checks http against https: nats-server serves one of them.
func (v *validator) monitoringTLS(o *Options) {
	v.host("https", o.HTTPSHost)
	v.port("https_port", o.HTTPSPort)
	if (o.HTTPSHost != "" || o.HTTPSPort != 0) && (o.HTTPHost != "" || o.HTTPPort != 0) {
		v.add("https_port", "cannot be used with http_port (nats-server serves monitoring over one of them)")
	}
	if o.HTTPSPort != 0 && o.TLS == nil {
		v.add("https_port", "needs a tls {} block: HTTPS monitoring serves its certificate")
	}
}

func (w *writer) tls(key string, t *TLS) {
	if t == nil {
		return
	}
	w.open(key)
	w.str("cert_file", t.CertFile)
	w.str("key_file", t.KeyFile)
	w.str("ca_file", t.CAFile)
	w.bool("verify", t.Verify)
	w.bool("verify_and_map", t.VerifyAndMap)
	w.seconds("timeout", t.Timeout)
	w.bool("handshake_first", t.HandshakeFirst)
	w.strings("cipher_suites", t.CipherSuites)
	w.strings("curve_preferences", t.CurvePreferences)
	w.str("min_version", t.MinVersion)
	w.close()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
