# Tests for packaging/ and debian/: man pages and bash completion stay in
# step with the programs' --help; make install and install-agent, and the
# systemd units (verified and hardening assessed by systemd-analyze); the
# run-time package list against what the installed agent loads;
# libtpmlic's exported symbols against the header and the symbols file.
# The appliance boot test (tests/vm) is not here: make vm-test.
TEST_SCRIPTS += tests/integration/man_pages.sh
TEST_SCRIPTS += tests/integration/bash_completion.sh
TEST_SCRIPTS += tests/integration/install_agent.sh
TEST_SCRIPTS += tests/integration/runtime_deps.sh
TEST_SCRIPTS += tests/integration/libtpmlic_symbols.sh
