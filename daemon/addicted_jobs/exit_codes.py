"""The process exit codes the daemon and the command line share; a module with no imports, so the
light command line (cli/) and the settings both take them from here."""

# sysexits.h EX_CONFIG: a refused configuration. systemd's RestartPreventExitStatus= names it in
# the unit, so a daemon that cannot start for a config error is not restarted in a loop.
EX_CONFIG = 78
