package conf

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"
)

// A config in parts. A Kubernetes Secret holds at most 1 MiB, less than the
// config of a cluster with 10,000 users (each a 60-byte bcrypt hash, a name
// and permissions). The NATS format cannot spread one list (authorization's
// users) over several files: an include brings in whole keys, and a later
// key replaces an earlier one. So the operator renders the config whole, as
// always (a config nats-server parses), cuts the bytes into parts of one
// Secret each, and writes in place of the config a manifest:
//
//	# natsforge config parts: ...
//	natsforge_config_parts {
//	  sha256: "<hex SHA-256 of the whole config>"
//	  files: ["nats.conf.1", "nats.conf.2"]
//	}
//
// ReadConfig joins the files, in order, from the manifest's directory and
// checks the SHA-256 before anything reads the result: a broker never loads a
// half-updated set (the kubelet swaps one volume's files at once, but it may
// still mix Secrets of different writes in one swap), it waits for the next
// one. The manifest is the one file only natsforge-broker reads; nats-server
// refuses it (an unknown key) rather than running without the users, and
// reads the joined config like any other.

// PartsKey is the manifest's only key.
const PartsKey = "natsforge_config_parts"

// partsHeader begins every manifest, so that ReadConfig tells one from a
// config without parsing a large config twice.
const partsHeader = "# natsforge config parts:"

// RenderPartsManifest is the manifest of a config cut into files (names in
// the manifest's directory), whose whole SHA-256 is digest (hex).
func RenderPartsManifest(digest string, files []string) []byte {
	var b bytes.Buffer
	b.WriteString(partsHeader + " natsforge-broker joins the files below, in order,\n")
	b.WriteString("# checks their SHA-256 and reads the result as its config.\n")
	fmt.Fprintf(&b, "%s {\n  sha256: %q\n  files: [", PartsKey, digest)
	for i, f := range files {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q", f)
	}
	b.WriteString("]\n}\n")
	return b.Bytes()
}

// ReadConfig reads the config file at path: the file itself, or, when it is
// a parts manifest, the parts it names joined and checked against its
// SHA-256. A missing part or a digest that does not match is an error naming
// the manifest: the parts are from different writes, and the next update
// brings a consistent set.
func ReadConfig(path string) ([]byte, error) {
	data, err := readConfigFile(path)
	if err != nil {
		return nil, &Error{File: path, Msg: "cannot read: " + err.Error()}
	}
	if !bytes.HasPrefix(data, []byte(partsHeader)) {
		return data, nil
	}
	digest, files, err := parsePartsManifest(data, path)
	if err != nil {
		return nil, err
	}
	var whole bytes.Buffer
	for _, f := range files {
		b, err := readConfigFile(filepath.Join(filepath.Dir(path), f))
		if err != nil {
			return nil, &Error{File: path, Key: PartsKey, Msg: fmt.Sprintf("cannot read part %q: %v", f, err)}
		}
		if whole.Len()+len(b) > maxFileSize {
			return nil, &Error{File: path, Key: PartsKey, Msg: fmt.Sprintf("the parts are larger than %d bytes", maxFileSize)}
		}
		whole.Write(b)
	}
	sum := sha256.Sum256(whole.Bytes())
	if got := hex.EncodeToString(sum[:]); got != digest {
		return nil, &Error{File: path, Key: PartsKey, Msg: fmt.Sprintf("the %d parts joined have SHA-256 %s, not %s: they are from different writes", len(files), got, digest)}
	}
	return whole.Bytes(), nil
}

// parsePartsManifest reads a manifest with the config parser.
func parsePartsManifest(data []byte, path string) (digest string, files []string, err error) {
	tree, err := parseTree(string(data), path)
	if err != nil {
		return "", nil, err
	}
	bad := func(msg string) (string, []string, error) {
		return "", nil, &Error{File: path, Key: PartsKey, Msg: msg}
	}
	if len(tree.entries) != 1 || tree.entries[0].key != PartsKey || tree.entries[0].val.kind != kindMap {
		return bad("a parts manifest holds one map " + PartsKey + " and nothing else")
	}
	m := tree.entries[0].val
	sum, list := m.lookup("sha256"), m.lookup("files")
	if sum == nil || sum.val.kind != kindString || len(sum.val.str) != 2*sha256.Size || len(m.entries) != 2 {
		return bad("needs sha256 (64 hex digits) and files, and nothing else")
	}
	if list == nil || list.val.kind != kindArray || len(list.val.items) == 0 {
		return bad("files must list at least one file")
	}
	for _, n := range list.val.items {
		if n.kind != kindString || n.str == "" || strings.ContainsAny(n.str, `/\`) || n.str == "." || n.str == ".." {
			return bad("files are names in the manifest's directory")
		}
		files = append(files, n.str)
	}
	return sum.val.str, files, nil
}
