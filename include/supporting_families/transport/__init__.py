"""Transport to partners: the pinned SFTP client, OpenPGP through GnuPG, the rules for remote names."""
