"""One thin command-line program per DVC stage: arguments in, a kisbench call, files out."""
