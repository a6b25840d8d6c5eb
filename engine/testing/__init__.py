"""The test kit for plugin authors: time-skipping Temporal, the Feishu stand-in, frozen wall clock."""
