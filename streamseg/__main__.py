from streamseg.cli import entry

entry()
