module github.com/bounded-systems/claude-box/test

go 1.25.0
