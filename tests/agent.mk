# Tests for agent/.
TESTS += test_agent_config
test_agent_config_SRCS := tests/unit/test_agent_config.c
test_agent_config_LIBS := agent common
test_agent_config_PKGS := cmocka
