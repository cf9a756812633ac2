// Package deploy_test checks the files of examples/deploy: the systemd
// unit of a replica (xborder.service) and the user it runs as
// (xborder.sysusers). The checks that need systemd's own tools run when
// systemd-analyze and systemd-sysusers are installed, and are skipped with
// a message that says the unit was not checked otherwise.
package deploy_test

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/xborder/xborder/node"
)

const (
	unitFile     = "xborder.service"
	sysusersFile = "xborder.sysusers"
	// program is where the unit runs xborder from, where
	// docs/operators.md installs it.
	program = "/usr/local/bin/xborder"
	// maxExposure is the highest exposure systemd-analyze security may
	// rate the unit, in its tenths (20 is "2.0", which it calls OK).
	maxExposure = "20"
)

// tool returns the path of one of systemd's commands, or skips the test
// saying plainly that the unit was not checked.
func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("SKIPPED: %s is not installed, so systemd did NOT check examples/deploy here; install it (apt-get install systemd) to run this check", name)
	}
	return p
}

// unit is a parsed unit file: per section, each key's values in order.
type unit map[string]map[string][]string

func readUnit(t *testing.T, path string) unit {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	u := make(unit)
	var section string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
			u[section] = make(map[string][]string)
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: %q is no key=value line of a section", path, n, line)
			}
			u[section][strings.TrimSpace(k)] = append(u[section][strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	return u
}

// one returns the single value of key in section, failing when it has
// none or several.
func (u unit) one(t *testing.T, section, key string) string {
	t.Helper()
	vs := u[section][key]
	if len(vs) != 1 {
		t.Fatalf("%s: [%s] %s= has %d values %q; want one", unitFile, section, key, len(vs), vs)
	}
	return vs[0]
}

// sysuser returns the name and home of the user xborder.sysusers makes.
func sysuser(t *testing.T) (name, home string) {
	t.Helper()
	b, err := os.ReadFile(sysusersFile)
	if err != nil {
		t.Fatal(err)
	}
	// u NAME ID "GECOS" HOME
	re := regexp.MustCompile(`(?m)^u\s+(\S+)\s+\S+\s+"[^"]*"\s+(\S+)\s*$`)
	m := re.FindAllStringSubmatch(string(b), -1)
	if len(m) != 1 {
		t.Fatalf("%s: %d user lines; want one `u NAME - \"GECOS\" HOME`", sysusersFile, len(m))
	}
	return m[0][1], m[0][2]
}

// TestUnitFitsTheNode checks the unit against the node and the other
// file: it runs `node run` on the state directory systemd makes, as the
// user xborder.sysusers makes, hands the node its storage key under the
// credential name the node reads, and keeps the hardening the docs
// promise.
func TestUnitFitsTheNode(t *testing.T) {
	u := readUnit(t, unitFile)
	user, home := sysuser(t)
	if got := u.one(t, "Service", "User"); got != user {
		t.Errorf("User=%s; want %s, the user of %s", got, user, sysusersFile)
	}
	if got := u.one(t, "Service", "Group"); got != user {
		t.Errorf("Group=%s; want %s, the group systemd-sysusers makes with the user", got, user)
	}
	dir := "/var/lib/" + u.one(t, "Service", "StateDirectory")
	if home != dir {
		t.Errorf("%s: the user's home is %s; want the state directory %s", sysusersFile, home, dir)
	}
	if got, want := u.one(t, "Service", "ExecStart"), program+" node run --dir "+dir; got != want {
		t.Errorf("ExecStart=%s; want %s", got, want)
	}
	cred := u.one(t, "Service", "LoadCredentialEncrypted")
	if id, path, _ := strings.Cut(cred, ":"); id != node.StorageKeyFile || !filepath.IsAbs(path) {
		t.Errorf("LoadCredentialEncrypted=%s; want %s:/ABSOLUTE/PATH, the credential the node reads from $CREDENTIALS_DIRECTORY", cred, node.StorageKeyFile)
	}
	for key, want := range map[string]string{
		"ProtectSystem": "strict", "ProtectHome": "yes", "NoNewPrivileges": "yes", "CapabilityBoundingSet": "",
		"PrivateTmp": "yes", "StateDirectoryMode": "0700", "UMask": "0077",
	} {
		if got := u.one(t, "Service", key); got != want {
			t.Errorf("%s=%s; want %s=%s", key, got, key, want)
		}
	}
}

// verifiable writes a copy of the unit into a new directory with
// ExecStart's program replaced by one that exists here (this test's own
// binary), since systemd-analyze verify refuses a unit whose program is
// missing, and change applied to the text; it returns the copy's path.
func verifiable(t *testing.T, change func(string) string) string {
	t.Helper()
	b, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	if n := strings.Count(text, "ExecStart="+program+" "); n != 1 {
		t.Fatalf("%s: %d ExecStart= lines run %s; want one", unitFile, n, program)
	}
	text = change(strings.Replace(text, "ExecStart="+program+" ", "ExecStart="+self+" ", 1))
	p := filepath.Join(t.TempDir(), unitFile)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestUnitVerifies runs `systemd-analyze verify` on the unit: it must exit
// 0 and say nothing (a misspelt or unknown option is only a warning). A
// copy with a misspelt option must be caught, to show the check sees one.
func TestUnitVerifies(t *testing.T) {
	sa := tool(t, "systemd-analyze")
	verify := func(path string) (string, error) {
		out, err := exec.Command(sa, "verify", "--man=no", path).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	if out, err := verify(verifiable(t, func(s string) string { return s })); err != nil || out != "" {
		t.Errorf("systemd-analyze verify %s: %v\n%s", unitFile, err, out)
	}
	misspelt := verifiable(t, func(s string) string {
		return strings.Replace(s, "ProtectSystem=strict", "ProtectSytem=strict", 1)
	})
	if out, err := verify(misspelt); err == nil && !strings.Contains(out, "ProtectSytem") {
		t.Errorf("systemd-analyze verify of a unit with ProtectSytem= (misspelt) said nothing of it: %q", out)
	}
}

// TestUnitSecurity runs `systemd-analyze security --offline` on the unit:
// its overall exposure must be at most maxExposure tenths.
func TestUnitSecurity(t *testing.T) {
	sa := tool(t, "systemd-analyze")
	out, err := exec.Command(sa, "security", "--offline=yes", "--no-pager", "--threshold="+maxExposure,
		verifiable(t, func(s string) string { return s })).CombinedOutput()
	level := regexp.MustCompile(`Overall exposure level for \S+: (\S+ \S+)`).FindSubmatch(out)
	if err != nil || level == nil {
		t.Fatalf("systemd-analyze security --offline=yes --threshold=%s %s: %v; want the exposure at most %s tenths\n%s",
			maxExposure, unitFile, err, maxExposure, out)
	}
	t.Logf("systemd-analyze security: exposure %s", level[1])
}

// TestSysusers runs `systemd-sysusers --dry-run` on the user file,
// installed as docs/operators.md says in an empty root: it must make the
// unit's user.
func TestSysusers(t *testing.T) {
	su := tool(t, "systemd-sysusers")
	user, _ := sysuser(t)
	b, err := os.ReadFile(sysusersFile)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc", "sysusers.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc", "sysusers.d", "xborder.conf"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(su, "--root="+root, "--dry-run").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Creating user '"+user+"'") {
		t.Errorf("systemd-sysusers --dry-run %s: %v; want it to create user %s\n%s", sysusersFile, err, user, out)
	}
}
