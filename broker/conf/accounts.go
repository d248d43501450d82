package conf

import (
	"fmt"
	"slices"
	"strings"
)

// The accounts {} block, as nats-server reads it:
//
//	accounts {
//	  A { users: [{user: a, password: "..."}]
//	      exports: [{stream: "orders.>"}, {service: "help", accounts: [B]}] }
//	  B { users: [...]
//	      imports: [{stream: {account: A, subject: "orders.>"}, prefix: "a"},
//	                {service: {account: A, subject: "help"}, to: "a.help"}] }
//	}
//
// Each import is checked against the exporter's exports once every account
// is read, as nats-server does, and refused with the import's file and line.

var (
	accountFields = map[string][]string{
		"users": {"users"}, "exports": {"exports"}, "imports": {"imports"},
		"default_permissions": {"default_permissions"},
	}
	exportFields       = map[string][]string{"stream": {"subject"}, "service": {"subject"}, "accounts": {"accounts"}}
	importFields       = map[string][]string{"stream": {"source"}, "service": {"source"}, "prefix": {"prefix"}, "to": {"to"}}
	importSourceFields = map[string][]string{"account": {"account"}, "subject": {"subject"}}

	accountBlock = &block{path: "accounts.<name>", fields: accountFields, unknownMsg: `unknown field %q`, unsupported: []string{
		"nkey", "jetstream", "mappings", "maps", "limits", "msg_trace", "trace_dest",
	}}
	exportBlock = &block{path: "accounts.<name>.exports[]", fields: exportFields, unknownMsg: `unknown field %q`, unsupported: []string{
		"response", "response_type", "threshold", "response_threshold", "response_max_time", "response_time",
		"latency", "account_token_position", "allow_trace",
	}}
	importBlock = &block{path: "accounts.<name>.imports[]", fields: importFields, unknownMsg: `unknown field %q`, unsupported: []string{
		"share", "allow_trace",
	}}
	importSourceBlock = &block{path: "accounts.<name>.imports[].stream, .service", fields: importSourceFields, unknownMsg: `unknown field %q`}
)

// importRef is where an import was written, for the checks made once every
// account is read.
type importRef struct {
	n       *node
	key     string
	account int // index in Options.Accounts of the importer
	index   int // index in its Imports
}

func (d *decoder) accounts(n *node, at string) ([]Account, error) {
	if err := d.want(n, at, kindMap); err != nil {
		return nil, err
	}
	var out []Account
	for _, e := range n.effective() {
		if e.used && e.val.kind != kindMap {
			continue // defines a variable
		}
		key := path(at, e.key)
		if e.key == GlobalAccount {
			return nil, d.fail(e.val, key, "%q is a Reserved Account", e.key)
		}
		if err := d.want(e.val, key, kindMap); err != nil {
			return nil, d.fail(e.val, key, "Expected map entries for accounts")
		}
		if err := d.conflicts(e.val, key, accountFields); err != nil {
			return nil, err
		}
		a := Account{Name: e.key}
		for _, f := range e.val.effective() {
			v, fkey := f.val, path(key, f.key)
			var err error
			switch strings.ToLower(f.key) {
			case "users":
				a.Users, err = d.users(v, fkey)
			case "default_permissions":
				a.DefaultPermissions, err = d.permissions(v, fkey)
			case "exports":
				a.Exports, err = d.exports(v, fkey)
			case "imports":
				var refs []importRef
				a.Imports, refs, err = d.imports(v, fkey)
				for _, r := range refs {
					r.account = len(out)
					d.importRefs = append(d.importRefs, r)
				}
			default:
				d.unknown(f, fkey, accountBlock)
			}
			if err != nil {
				return nil, err
			}
		}
		out = append(out, a)
	}
	return out, nil
}

func (d *decoder) exports(n *node, at string) ([]Export, error) {
	if err := d.want(n, at, kindArray); err != nil {
		return nil, err
	}
	var out []Export
	for i, item := range n.items {
		key := fmt.Sprintf("%s[%d]", at, i)
		if item.kind != kindMap {
			return nil, d.fail(item, key, "Export Items should be a map with type entry, got %s", item.kind)
		}
		if err := d.conflicts(item, key, exportFields); err != nil {
			return nil, err
		}
		var x Export
		for _, e := range item.effective() {
			v, ekey := e.val, path(key, e.key)
			var err error
			switch strings.ToLower(e.key) {
			case "stream":
				x.Stream, err = d.subject(v, ekey)
			case "service":
				x.Service, err = d.subject(v, ekey)
			case "accounts":
				x.Accounts, err = d.names(v, ekey)
			default:
				d.unknown(e, ekey, exportBlock)
			}
			if err != nil {
				return nil, err
			}
		}
		if x.Stream == "" && x.Service == "" {
			return nil, d.fail(item, key, "an export needs a stream or a service")
		}
		out = append(out, x)
	}
	return out, nil
}

func (d *decoder) imports(n *node, at string) ([]Import, []importRef, error) {
	if err := d.want(n, at, kindArray); err != nil {
		return nil, nil, err
	}
	var out []Import
	var refs []importRef
	for i, item := range n.items {
		key := fmt.Sprintf("%s[%d]", at, i)
		if item.kind != kindMap {
			return nil, nil, d.fail(item, key, "Import Items should be a map with type entry, got %s", item.kind)
		}
		if err := d.conflicts(item, key, importFields); err != nil {
			return nil, nil, err
		}
		var im Import
		var srcNode *node
		for _, e := range item.effective() {
			v, ekey := e.val, path(key, e.key)
			var err error
			switch strings.ToLower(e.key) {
			case "stream":
				im.Stream, err = d.importSource(v, ekey)
				srcNode = v
			case "service":
				im.Service, err = d.importSource(v, ekey)
				srcNode = v
			case "prefix":
				im.Prefix, err = d.str(v, ekey)
				if err == nil && (im.Prefix == "" || !subjectIsLiteral(im.Prefix) || !validSubject(im.Prefix)) {
					err = d.fail(v, ekey, "invalid prefix %q: a literal subject", im.Prefix)
				}
			case "to":
				im.To, err = d.subject(v, ekey)
			default:
				d.unknown(e, ekey, importBlock)
			}
			if err != nil {
				return nil, nil, err
			}
		}
		switch {
		case im.Stream == nil && im.Service == nil:
			return nil, nil, d.fail(item, key, "an import needs a stream or a service")
		case im.Stream != nil && im.To != "":
			// nats-server maps a stream import with to; not implemented.
			return nil, nil, d.fail(item, path(key, "to"), "a stream import with to is %s; use prefix", NotSupported)
		case im.Service != nil && im.Prefix != "":
			return nil, nil, d.fail(item, path(key, "prefix"), "a service import takes to, not prefix")
		}
		out = append(out, im)
		refs = append(refs, importRef{n: srcNode, key: key, index: i})
	}
	return out, refs, nil
}

func (d *decoder) importSource(n *node, at string) (*ImportSource, error) {
	if n.kind != kindMap {
		return nil, d.fail(n, at, "entry should be an account map, got %s", n.kind)
	}
	if err := d.conflicts(n, at, importSourceFields); err != nil {
		return nil, err
	}
	src := &ImportSource{}
	for _, e := range n.effective() {
		v, key := e.val, path(at, e.key)
		var err error
		switch strings.ToLower(e.key) {
		case "account":
			src.Account, err = d.str(v, key)
		case "subject":
			src.Subject, err = d.subject(v, key)
		default:
			d.unknown(e, key, importSourceBlock)
		}
		if err != nil {
			return nil, err
		}
	}
	if src.Account == "" || src.Subject == "" {
		return nil, d.fail(n, at, "Expect an account name and a subject")
	}
	return src, nil
}

// subject is one valid subject.
func (d *decoder) subject(n *node, at string) (string, error) {
	s, err := d.str(n, at)
	if err == nil && !validSubject(s) {
		err = d.fail(n, at, "invalid subject %q", s)
	}
	return s, err
}

// checkAccounts makes the checks that need every account read: each import
// names an account that exports what it imports to the importer (in
// nats-server's words), export account lists name accounts, users are unique
// across accounts and authorization, the system account exists.
func (d *decoder) checkAccounts(o *Options, root *node) error {
	byName := map[string]*Account{}
	for i := range o.Accounts {
		byName[o.Accounts[i].Name] = &o.Accounts[i]
	}
	for _, r := range d.importRefs {
		a := &o.Accounts[r.account]
		im := a.Imports[r.index]
		kind, src := "stream", im.Stream
		if src == nil {
			kind, src = "service", im.Service
		}
		exporter := byName[src.Account]
		if exporter == nil {
			return d.fail(r.n, path(r.key, kind+".account"), "%q account not defined for %s import", src.Account, kind)
		}
		if !exportsAuthorize(exporter.Exports, kind, src.Subject, a.Name) {
			return d.fail(r.n, path(r.key, kind), "Error adding %s import %q: %s import not authorized", kind, src.Subject, kind)
		}
	}
	seen := map[string]string{}
	if a := o.Authorization; a != nil {
		for _, u := range a.Users {
			seen[u.Name] = GlobalAccount
		}
		if len(o.Accounts) > 0 && a.User != "" {
			return d.fail(root, "authorization.user", "Can not have a single user/pass and accounts")
		}
		if len(o.Accounts) > 0 && a.Token != "" {
			return d.fail(root, "authorization.token", "Can not have a token and accounts")
		}
	}
	for _, a := range o.Accounts {
		for _, x := range a.Exports {
			for _, n := range x.Accounts {
				if byName[n] == nil {
					kind := "stream"
					if x.Service != "" {
						kind = "service"
					}
					return &Error{File: root.file, Key: "accounts." + a.Name + ".exports", Msg: fmt.Sprintf("%q account not defined for %s export", n, kind)}
				}
			}
		}
		for _, u := range a.Users {
			if _, dup := seen[u.Name]; dup {
				return &Error{File: root.file, Key: "accounts." + a.Name + ".users", Msg: fmt.Sprintf("Duplicate user %q detected", u.Name)}
			}
			seen[u.Name] = a.Name
		}
	}
	if o.SystemAccount != "" && o.SystemAccount != GlobalAccount && byName[o.SystemAccount] == nil {
		e := root.lookup("system_account")
		if e == nil {
			e = root.lookup("system")
		}
		n := root
		if e != nil {
			n = e.val
		}
		return d.fail(n, "system_account", "system account %q not defined", o.SystemAccount)
	}
	return nil
}

// authorizes reports whether these exports let account importer import
// subject as kind ("stream" or "service"): an export of that kind whose
// subject covers it, public or listing the importer.
func exportsAuthorize(xs []Export, kind, subject, importer string) bool {
	for _, x := range xs {
		s := x.Stream
		if kind == "service" {
			s = x.Service
		}
		if s == "" || !subjectIsSubset(subject, s) {
			continue
		}
		if len(x.Accounts) == 0 || slices.Contains(x.Accounts, importer) {
			return true
		}
	}
	return false
}

// subjectIsSubset reports whether every subject that subject matches (it may
// hold wildcards) is also matched by pattern.
func subjectIsSubset(subject, pattern string) bool {
	for {
		ptok, prest, pmore := strings.Cut(pattern, ".")
		stok, srest, smore := strings.Cut(subject, ".")
		switch {
		case ptok == ">":
			return true
		case stok == ">":
			return false
		case ptok == "*":
		case stok == "*":
			return false
		case ptok != stok:
			return false
		}
		if !pmore || !smore {
			return pmore == smore
		}
		pattern, subject = prest, srest
	}
}

// subjectIsLiteral reports whether s holds no wildcard token.
func subjectIsLiteral(s string) bool {
	for t := range strings.SplitSeq(s, ".") {
		if t == "*" || t == ">" {
			return false
		}
	}
	return true
}

// Authorizes reports whether account a exports subject (a stream when
// service is false) to account importer; the operator and the broker use it.
func (a *Account) Authorizes(service bool, subject, importer string) bool {
	kind := "stream"
	if service {
		kind = "service"
	}
	return exportsAuthorize(a.Exports, kind, subject, importer)
}
