"""The `kiosk` command: thin click commands that parse, call the library and print."""
