package conf

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ParseFile reads the config file at path (joining its parts when it is a
// parts manifest: parts.go). Includes are relative to path's
// directory. Warnings list keys the broker ignores; the error, if any, is an
// *Error naming file, line and key.
func ParseFile(path string) (*Options, []Warning, error) {
	data, err := ReadConfig(path)
	if err != nil {
		return nil, nil, err
	}
	return Parse(data, path)
}

// Load is the whole check the broker applies to a config at start-up and on
// reload, and the operator to every config it renders: Parse, then Validate.
// A config Load refuses never runs.
func Load(data []byte, filename string) (*Options, []Warning, error) {
	o, warnings, err := Parse(data, filename)
	if err != nil {
		return nil, warnings, err
	}
	if err := o.Validate(); err != nil {
		return nil, warnings, err
	}
	return o, warnings, nil
}

// LoadFile is Load of the file at path.
func LoadFile(path string) (*Options, []Warning, error) {
	data, err := ReadConfig(path)
	if err != nil {
		return nil, nil, err
	}
	return Load(data, path)
}

// Parse reads a config from data; filename names it in errors and anchors
// relative includes.
func Parse(data []byte, filename string) (*Options, []Warning, error) {
	tree, err := parseTree(string(data), filename)
	if err != nil {
		return nil, nil, err
	}
	d := &decoder{}
	o, err := d.options(tree)
	if err != nil || len(d.keyErrors) > 0 {
		return nil, d.warnings, d.joinKeyErrors(err)
	}
	return o, d.warnings, nil
}

// decoder maps the syntax tree onto Options. Keys are matched without regard
// to case, and accept nats-server's aliases. Messages never quote a secret.
type decoder struct {
	warnings []Warning
	// keyErrors are the unknown and unsupported keys: decoding goes on, so
	// that all of them are reported together, as nats-server does.
	keyErrors []*Error
	// importRefs are the imports read, checked once every account is.
	importRefs []importRef
}

func path(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func (d *decoder) fail(n *node, key, format string, args ...any) *Error {
	return &Error{File: n.file, Line: n.line, Key: key, Msg: fmt.Sprintf(format, args...)}
}

// unknown records a key of block b that the decoder has no case for. As in
// nats-server, a key that only defines a variable used elsewhere is fine.
func (d *decoder) unknown(e *entry, key string, b *block) {
	if e.used {
		return
	}
	d.keyErrors = append(d.keyErrors, b.keyError(e, key))
}

// joinKeyErrors returns the key errors in file order, then err (the error
// that stopped decoding, if any), as one error.
func (d *decoder) joinKeyErrors(err error) error {
	slices.SortStableFunc(d.keyErrors, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col))
	})
	var errs []error
	for _, e := range d.keyErrors {
		errs = append(errs, e)
	}
	if len(errs) == 0 {
		return err
	}
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 1 {
		return errs[0]
	}
	return errors.Join(errs...)
}

func (d *decoder) warn(n *node, key, msg string) {
	d.warnings = append(d.warnings, Warning{File: n.file, Line: n.line, Key: key, Msg: msg})
}

func (d *decoder) want(n *node, key string, k kind) error {
	if n.kind != k {
		return d.fail(n, key, "expected %s, got %s", k, n.kind)
	}
	return nil
}

func (d *decoder) str(n *node, key string) (string, error) {
	return n.str, d.want(n, key, kindString)
}

func (d *decoder) boolean(n *node, key string) (bool, error) {
	return n.bool, d.want(n, key, kindBool)
}

func (d *decoder) integer(n *node, key string) (int64, error) {
	return n.num, d.want(n, key, kindInt)
}

// smallInt is an integer that fits an int32, as nats-server's int fields.
func (d *decoder) smallInt(n *node, key string) (int, error) {
	v, err := d.integer(n, key)
	if err != nil {
		return 0, err
	}
	if v > math.MaxInt32 || v < math.MinInt32 {
		return 0, d.fail(n, key, "%d is out of range", v)
	}
	return int(v), nil
}

// size is a number of bytes: 1048576, 1MB, 64KB, 1K (= 1000).
func (d *decoder) size(n *node, key string, limit int64) (int64, error) {
	switch n.kind {
	case kindInt:
		if n.num > limit {
			return 0, d.fail(n, key, "size %s is too big (at most %d)", n.str, limit)
		}
		return n.num, nil
	case kindString, kindFloat:
		return 0, d.fail(n, key, "invalid size %q", n.str)
	}
	return 0, d.fail(n, key, "expected a size like 1MB, got %s", n.kind)
}

// duration is a string ("2m", "1.5s") or a number of seconds.
func (d *decoder) duration(n *node, key string, numberWarning string) (time.Duration, error) {
	switch n.kind {
	case kindString:
		v, err := time.ParseDuration(n.str)
		if err != nil {
			return 0, d.fail(n, key, "invalid duration %q", n.str)
		}
		return v, nil
	case kindInt:
		if n.num > math.MaxInt64/int64(time.Second) || n.num < math.MinInt64/int64(time.Second) {
			return 0, d.fail(n, key, "duration %s is out of range", n.str)
		}
		if numberWarning != "" {
			d.warn(n, key, numberWarning)
		}
		return time.Duration(n.num) * time.Second, nil
	}
	return 0, d.fail(n, key, "expected a duration like \"2m\", got %s", n.kind)
}

// seconds is an authorization timeout: seconds as a number (2, 0.5) or a
// duration string ("2s").
func (d *decoder) seconds(n *node, key string) (time.Duration, error) {
	switch n.kind {
	case kindString:
		return d.duration(n, key, "")
	case kindInt:
		return d.duration(n, key, "")
	case kindFloat:
		// Parse the literal, not the float, so 0.1 is exactly 100ms.
		v, err := time.ParseDuration(strings.TrimPrefix(n.str, "+") + "s")
		if err != nil {
			return 0, d.fail(n, key, "timeout %s is out of range", n.str)
		}
		return v, nil
	}
	return 0, d.fail(n, key, "expected a number of seconds, got %s", n.kind)
}

// hostPort reads `listen` and `http`: a port, or "host:port".
func (d *decoder) hostPort(n *node, key string) (string, int, error) {
	switch n.kind {
	case kindInt:
		p, err := d.smallInt(n, key)
		return "", p, err
	case kindString:
		host, port, err := net.SplitHostPort(n.str)
		if err != nil {
			return "", 0, d.fail(n, key, "invalid address %q: expected host:port", n.str)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return "", 0, d.fail(n, key, "invalid port %q", port)
		}
		return host, p, nil
	}
	return "", 0, d.fail(n, key, "expected a port or \"host:port\", got %s", n.kind)
}

// What each known key sets, per block. Two keys of a block that set the same
// thing (an alias, another case, listen and port) are an error: nats-server
// keeps a Go map and would apply them in a random order.
var (
	topFields = map[string][]string{
		"server_name": {"server_name"}, "host": {"host"}, "net": {"host"}, "port": {"port"},
		"listen": {"host", "port"}, "http": {"http_host", "http_port"}, "http_port": {"http_port"},
		"monitor_port": {"http_port"}, "max_payload": {"max_payload"}, "max_control_line": {"max_control_line"},
		"max_pending": {"max_pending"}, "max_connections": {"max_connections"}, "max_conn": {"max_connections"},
		"max_subscriptions": {"max_subscriptions"}, "max_subs": {"max_subscriptions"},
		"ping_interval": {"ping_interval"}, "ping_max": {"ping_max"}, "write_deadline": {"write_deadline"},
		"lame_duck_duration": {"lame_duck_duration"}, "lame_duck_grace_period": {"lame_duck_grace_period"},
		"debug": {"debug"}, "trace": {"trace"}, "no_auth_user": {"no_auth_user"},
		"authorization": {"authorization"}, "cluster": {"cluster"},
		"tls": {"tls"}, "https": {"https_host", "https_port"}, "https_port": {"https_port"},
		"accounts": {"accounts"}, "system_account": {"system_account"}, "system": {"system_account"},
	}
	authorizationFields = map[string][]string{
		"user": {"user"}, "username": {"user"}, "password": {"password"}, "pass": {"password"},
		"token": {"token"}, "timeout": {"timeout"}, "users": {"users"},
		"default_permissions": {"default_permissions"}, "default_permission": {"default_permissions"},
		"permissions": {"default_permissions"},
	}
	userFields = map[string][]string{
		"user": {"user"}, "username": {"user"}, "password": {"password"}, "pass": {"password"},
		"permissions": {"permissions"}, "permission": {"permissions"}, "authorization": {"permissions"},
	}
	permissionsFields = map[string][]string{
		"publish": {"publish"}, "pub": {"publish"}, "import": {"publish"},
		"subscribe": {"subscribe"}, "sub": {"subscribe"}, "export": {"subscribe"},
		"allow_responses": {"allow_responses"}, "publish_allow_responses": {"allow_responses"},
	}
	subjectPermissionFields = map[string][]string{"allow": {"allow"}, "deny": {"deny"}}
	clusterFields           = map[string][]string{
		"name": {"name"}, "listen": {"host", "port"}, "host": {"host"}, "net": {"host"}, "port": {"port"},
		"authorization": {"authorization"}, "routes": {"routes"}, "no_advertise": {"no_advertise"},
		"tls": {"tls"},
	}
	clusterAuthorizationFields = map[string][]string{
		"user": {"user"}, "username": {"user"}, "password": {"password"}, "pass": {"password"},
		"timeout": {"timeout"}, "users": {"users"}, "token": {"token"},
	}
)

// conflicts reports two keys of map n that set the same thing.
func (d *decoder) conflicts(n *node, at string, fields map[string][]string) error {
	by := map[string]*entry{}
	for _, e := range n.effective() {
		for _, f := range fields[strings.ToLower(e.key)] {
			if prev := by[f]; prev != nil {
				return d.fail(e.val, path(at, e.key), "sets what %s on line %d sets; nats-server would apply one of them at random", prev.key, prev.line)
			}
			by[f] = e
		}
	}
	return nil
}

func (d *decoder) options(root *node) (*Options, error) {
	if err := d.conflicts(root, "", topFields); err != nil {
		return nil, err
	}
	o := &Options{}
	for _, e := range root.effective() {
		n, key := e.val, e.key
		var err error
		switch strings.ToLower(e.key) {
		case "server_name":
			o.ServerName, err = d.str(n, key)
		case "host", "net":
			o.Host, err = d.str(n, key)
		case "port":
			o.Port, err = d.smallInt(n, key)
		case "listen":
			o.Host, o.Port, err = d.hostPort(n, key)
		case "http":
			o.HTTPHost, o.HTTPPort, err = d.hostPort(n, key)
		case "http_port", "monitor_port":
			o.HTTPPort, err = d.smallInt(n, key)
		case "max_payload":
			o.MaxPayload, err = d.size(n, key, math.MaxInt32)
		case "max_control_line":
			var v int64
			v, err = d.size(n, key, math.MaxInt32)
			o.MaxControlLine = int(v)
		case "max_pending":
			o.MaxPending, err = d.size(n, key, math.MaxInt64)
		case "max_connections", "max_conn":
			o.MaxConnections, err = d.smallInt(n, key)
			if err == nil && o.MaxConnections == 0 {
				// Zero is "not set" here, but "refuse every client" to nats-server.
				err = d.fail(n, key, "0 would refuse every client in nats-server; leave the key out for the default")
			}
		case "max_subscriptions", "max_subs":
			o.MaxSubscriptions, err = d.smallInt(n, key)
		case "ping_interval":
			o.PingInterval, err = d.duration(n, key, "")
		case "ping_max":
			o.MaxPingsOut, err = d.smallInt(n, key)
		case "write_deadline":
			o.WriteDeadline, err = d.duration(n, key, "")
		case "lame_duck_duration":
			o.LameDuckDuration, err = d.duration(n, key, "a number of seconds: nats-server wants a duration string like \"30s\"")
			if err == nil && o.LameDuckDuration < MinLameDuckDuration {
				err = d.fail(n, key, "%v is below nats-server's minimum of %v", o.LameDuckDuration, MinLameDuckDuration)
			}
		case "lame_duck_grace_period":
			o.LameDuckGracePeriod, err = d.duration(n, key, "a number of seconds: nats-server wants a duration string like \"10s\"")
		case "debug":
			o.Debug, err = d.boolean(n, key)
		case "trace":
			o.Trace, err = d.boolean(n, key)
		case "no_auth_user":
			o.NoAuthUser, err = d.str(n, key)
		case "authorization":
			o.Authorization, err = d.authorization(n, key)
		case "cluster":
			o.Cluster, err = d.cluster(n, key)
		case "tls":
			o.TLS, err = d.tls(n, key)
		case "https":
			o.HTTPSHost, o.HTTPSPort, err = d.hostPort(n, key)
		case "https_port":
			o.HTTPSPort, err = d.smallInt(n, key)
		case "accounts":
			o.Accounts, err = d.accounts(n, key)
		case "system_account", "system":
			o.SystemAccount, err = d.str(n, key)
		default:
			d.unknown(e, key, topBlock)
		}
		if err != nil {
			return nil, err
		}
	}
	if len(d.keyErrors) == 0 {
		if err := d.checkAccounts(o, root); err != nil {
			return nil, err
		}
	}
	return o, nil
}

func (d *decoder) authorization(n *node, at string) (*Authorization, error) {
	if err := d.want(n, at, kindMap); err != nil {
		return nil, err
	}
	if err := d.conflicts(n, at, authorizationFields); err != nil {
		return nil, err
	}
	a := &Authorization{}
	for _, e := range n.effective() {
		v, key := e.val, path(at, e.key)
		var err error
		switch strings.ToLower(e.key) {
		case "user", "username":
			a.User, err = d.str(v, key)
		case "password", "pass":
			a.Password, err = d.str(v, key)
		case "token":
			a.Token, err = d.str(v, key)
		case "timeout":
			a.Timeout, err = d.seconds(v, key)
		case "users":
			a.Users, err = d.users(v, key)
		case "default_permissions", "default_permission", "permissions":
			a.DefaultPermissions, err = d.permissions(v, key)
		default:
			d.unknown(e, key, authorizationBlock)
		}
		if err != nil {
			return nil, err
		}
	}
	return a, nil
}

func (d *decoder) users(n *node, at string) ([]User, error) {
	if err := d.want(n, at, kindArray); err != nil {
		return nil, err
	}
	var users []User
	for i, item := range n.items {
		ukey := fmt.Sprintf("%s[%d]", at, i)
		if err := d.want(item, ukey, kindMap); err != nil {
			return nil, err
		}
		if err := d.conflicts(item, ukey, userFields); err != nil {
			return nil, err
		}
		var u User
		for _, e := range item.effective() {
			v, key := e.val, path(ukey, e.key)
			var err error
			switch strings.ToLower(e.key) {
			case "user", "username":
				u.Name, err = d.str(v, key)
			case "password", "pass":
				u.Password, err = d.str(v, key)
			case "permissions", "permission", "authorization":
				u.Permissions, err = d.permissions(v, key)
			default:
				d.unknown(e, key, userBlock)
			}
			if err != nil {
				return nil, err
			}
		}
		if u.Name == "" {
			return nil, d.fail(item, ukey, "a user entry needs a user")
		}
		users = append(users, u)
	}
	return users, nil
}

func (d *decoder) permissions(n *node, at string) (*Permissions, error) {
	if err := d.want(n, at, kindMap); err != nil {
		return nil, err
	}
	if err := d.conflicts(n, at, permissionsFields); err != nil {
		return nil, err
	}
	p := &Permissions{}
	for _, e := range n.effective() {
		v, key := e.val, path(at, e.key)
		var err error
		switch strings.ToLower(e.key) {
		case "publish", "pub", "import":
			p.Publish, err = d.subjectPermission(v, key)
		case "subscribe", "sub", "export":
			p.Subscribe, err = d.subjectPermission(v, key)
		case "allow_responses", "publish_allow_responses":
			switch v.kind {
			case kindBool:
				p.AllowResponses = v.bool
			case kindMap:
				// nats-server's {max, expires} response limits are not
				// implemented; reading the map as plain true would allow
				// more than it says.
				err = d.fail(v, key, "response limits (a map with max, expires) are %s; use true", NotSupported)
			default:
				err = d.fail(v, key, "expected a boolean or a map, got %s", v.kind)
			}
		default:
			d.unknown(e, key, permissionsBlock)
		}
		if err != nil {
			return nil, err
		}
	}
	return p, nil
}

// subjectPermission reads a subject, a list of subjects (allowed), or
// {allow, deny}. Empty lists and maps are no restriction: nil, as nats-server.
func (d *decoder) subjectPermission(n *node, at string) (*SubjectPermission, error) {
	switch n.kind {
	case kindString, kindArray:
		allow, err := d.subjects(n, at)
		if err != nil {
			return nil, err
		}
		if len(allow) == 0 {
			return nil, nil
		}
		return &SubjectPermission{Allow: allow}, nil
	case kindMap:
		if err := d.conflicts(n, at, subjectPermissionFields); err != nil {
			return nil, err
		}
		sp := &SubjectPermission{}
		for _, e := range n.effective() {
			v, key := e.val, path(at, e.key)
			var err error
			switch strings.ToLower(e.key) {
			case "allow":
				sp.Allow, err = d.subjects(v, key)
			case "deny":
				sp.Deny, err = d.subjects(v, key)
			default:
				d.unknown(e, key, subjectPermissionBlock)
			}
			if err != nil {
				return nil, err
			}
		}
		if len(sp.Allow) == 0 && len(sp.Deny) == 0 {
			return nil, nil
		}
		return sp, nil
	}
	return nil, d.fail(n, at, "expected a subject, a list of subjects or {allow, deny}, got %s", n.kind)
}

func (d *decoder) subjects(n *node, at string) ([]string, error) {
	if n.kind == kindString {
		return []string{n.str}, nil
	}
	if n.kind != kindArray {
		return nil, d.fail(n, at, "expected a subject or a list of subjects, got %s", n.kind)
	}
	var out []string
	for i, item := range n.items {
		if item.kind != kindString {
			return nil, d.fail(item, fmt.Sprintf("%s[%d]", at, i), "expected a subject, got %s", item.kind)
		}
		out = append(out, item.str)
	}
	return out, nil
}

func (d *decoder) cluster(n *node, at string) (*Cluster, error) {
	if err := d.want(n, at, kindMap); err != nil {
		return nil, err
	}
	if err := d.conflicts(n, at, clusterFields); err != nil {
		return nil, err
	}
	c := &Cluster{}
	for _, e := range n.effective() {
		v, key := e.val, path(at, e.key)
		var err error
		switch strings.ToLower(e.key) {
		case "name":
			c.Name, err = d.str(v, key)
		case "listen":
			c.Host, c.Port, err = d.hostPort(v, key)
		case "host", "net":
			c.Host, err = d.str(v, key)
		case "port":
			c.Port, err = d.smallInt(v, key)
		case "authorization":
			c.Authorization, err = d.clusterAuthorization(v, key)
		case "routes":
			c.Routes, err = d.routes(v, key)
		case "no_advertise":
			c.NoAdvertise, err = d.boolean(v, key)
		case "tls":
			c.TLS, err = d.tls(v, key)
		default:
			d.unknown(e, key, clusterBlock)
		}
		if err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (d *decoder) clusterAuthorization(n *node, at string) (*ClusterAuthorization, error) {
	if err := d.want(n, at, kindMap); err != nil {
		return nil, err
	}
	if err := d.conflicts(n, at, clusterAuthorizationFields); err != nil {
		return nil, err
	}
	a := &ClusterAuthorization{}
	for _, e := range n.effective() {
		v, key := e.val, path(at, e.key)
		var err error
		switch strings.ToLower(e.key) {
		case "user", "username":
			a.User, err = d.str(v, key)
		case "password", "pass":
			a.Password, err = d.str(v, key)
		case "timeout":
			a.Timeout, err = d.seconds(v, key)
		case "users":
			err = d.fail(v, key, "cluster authorization does not allow multiple users")
		case "token":
			err = d.fail(v, key, "cluster authorization does not support tokens")
		default:
			d.unknown(e, key, clusterAuthorizationBlock)
		}
		if err != nil {
			return nil, err
		}
	}
	return a, nil
}

// routes reads the route URLs. They carry the route password, so a bad one
// is reported by position only.
func (d *decoder) routes(n *node, at string) ([]string, error) {
	if err := d.want(n, at, kindArray); err != nil {
		return nil, err
	}
	var out []string
	for i, item := range n.items {
		key := fmt.Sprintf("%s[%d]", at, i)
		if item.kind != kindString {
			return nil, d.fail(item, key, "expected a URL, got %s", item.kind)
		}
		if _, err := url.Parse(item.str); err != nil {
			return nil, d.fail(item, key, "invalid URL")
		}
		out = append(out, item.str)
	}
	return out, nil
}
