# cli.cmake — the command line: --help and unknown flags of every vmc command (tests/test_cli.sh).
add_test(NAME cli_help COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/test_cli.sh $<TARGET_FILE:vmc>)
set_tests_properties(cli_help PROPERTIES LABELS cpu TIMEOUT 60)
