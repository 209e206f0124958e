// Package guestroom is a guest-agnostic capability engine: it turns a catalog
// of doors and named rooms into grants, checks caveats, and renders the
// rulebook and manifest that tell a guest exactly what it may and may not do.
// It performs no I/O; the door runtime lives in package door.
package guestroom
