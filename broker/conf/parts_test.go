package conf

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// splitConfig cuts b into n parts and returns the manifest and the files.
func splitConfig(b []byte, n int) (manifest []byte, files map[string]string) {
	files = map[string]string{}
	var names []string
	size := (len(b) + n - 1) / n
	for i := 0; i < n; i++ {
		name := "nats.conf." + string(rune('1'+i))
		names = append(names, name)
		files[name] = string(b[i*size : min((i+1)*size, len(b))])
	}
	sum := sha256.Sum256(b)
	return RenderPartsManifest(hex.EncodeToString(sum[:]), names), files
}

func manyUsersConfig() []byte {
	var b strings.Builder
	b.WriteString("port: 4222\nauthorization {\n  users = [\n")
	for i := range 300 {
		b.WriteString("    {user: u" + strings.Repeat("x", i%40) + string(rune('a'+i%26)) + "-" + itoa(i) + `, password: "$2a$11$DoVmwh1Ic.e3VprNsLnwAu5n1WjvQ6FhZoq05biQhXF6TKE58GGUW"}` + "\n")
	}
	b.WriteString("  ]\n}\n")
	return []byte(b.String())
}

func TestAConfigInPartsReadsAsTheWholeConfig(t *testing.T) {
	whole := manyUsersConfig()
	manifest, files := splitConfig(whole, 3)
	files["nats.conf"] = string(manifest)
	dir := writeFiles(t, files)
	got, err := ReadConfig(filepath.Join(dir, "nats.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(whole) {
		t.Fatal("the joined parts are not the config")
	}
	fromParts, _, err := LoadFile(filepath.Join(dir, "nats.conf"))
	if err != nil {
		t.Fatal(err)
	}
	direct, _, err := Load(whole, "nats.conf")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromParts, direct) || len(direct.Authorization.Users) != 300 {
		t.Errorf("LoadFile of the parts differs from the whole config")
	}
	// nats-server reads the joined config as it reads any.
	natsServerReads(t, got)
}

func TestNATSServerRefusesTheManifestRatherThanRunWithoutUsers(t *testing.T) {
	manifest, _ := splitConfig(manyUsersConfig(), 2)
	path := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(path, manifest, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := natsserver.ProcessConfigFile(path); err == nil || !strings.Contains(err.Error(), PartsKey) {
		t.Errorf("nats-server on a parts manifest: %v; want an error naming %s", err, PartsKey)
	}
}

func TestPartsOfDifferentWritesAreRefusedNamingTheManifest(t *testing.T) {
	whole := manyUsersConfig()
	manifest, files := splitConfig(whole, 2)
	files["nats.conf"] = string(manifest)
	// The second part of another write: same length, other bytes.
	files["nats.conf.2"] = strings.Replace(files["nats.conf.2"], "u", "v", 1)
	dir := writeFiles(t, files)
	_, err := ReadConfig(filepath.Join(dir, "nats.conf"))
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "nats.conf")+": "+PartsKey+": the 2 parts joined have SHA-256") {
		t.Errorf("err = %v", err)
	}
	delete(files, "nats.conf.2")
	dir = writeFiles(t, files)
	_, err = ReadConfig(filepath.Join(dir, "nats.conf"))
	if err == nil || !strings.Contains(err.Error(), `cannot read part "nats.conf.2"`) {
		t.Errorf("missing part: err = %v", err)
	}
}

func TestAPartsManifestNamesFilesInItsDirectoryOnly(t *testing.T) {
	for _, files := range []string{`["../etc/passwd"]`, `["a/b"]`, `[]`, `[".."]`} {
		m := partsHeader + "\n" + PartsKey + " {\n  sha256: \"" + strings.Repeat("0", 64) + "\"\n  files: " + files + "\n}\n"
		dir := writeFiles(t, map[string]string{"nats.conf": m})
		if _, err := ReadConfig(filepath.Join(dir, "nats.conf")); err == nil {
			t.Errorf("files %s accepted", files)
		}
	}
}
