package naming

import "testing"

func TestPermissionModule(t *testing.T) {
	for name, want := range map[string]string{"blog.post.create": "blog", "identity.user_profile.read": "identity"} {
		if got, ok := PermissionModule(name); !ok || got != want {
			t.Errorf("%s: %q %v", name, got, ok)
		}
	}
	for _, bad := range []string{"blog.create", "Blog.post.create", "blog.post.create.now", "blog..create", "1blog.post.create", ""} {
		if _, ok := PermissionModule(bad); ok {
			t.Errorf("%q accepted", bad)
		}
	}
}
