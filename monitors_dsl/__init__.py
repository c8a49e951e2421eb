"""The monitors rule language: parse, check, print and (later) compile alert rules."""
