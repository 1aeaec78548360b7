// Package naming holds the naming rules that both the manifests and the app kernel enforce,
// so the two can never disagree about what a valid name is.
package naming

import "regexp"

var permission = regexp.MustCompile(`^([a-z][a-z0-9]*)\.[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$`)

// PermissionModule returns the module part of a permission name of the form
// <module>.<resource>.<action> (lower case), and false when the name is not of that form.
func PermissionModule(name string) (string, bool) {
	m := permission.FindStringSubmatch(name)
	if m == nil {
		return "", false
	}
	return m[1], true
}
