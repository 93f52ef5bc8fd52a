"""HTTP: the simple API, files, uploads and the JSON API. Views parse, call, render."""
