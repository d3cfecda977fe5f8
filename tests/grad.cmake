# grad.cmake — `vmc grad` (runtime/cmd_grad.c): finite differences on the tiny model, refusals of bad files.
add_executable(test_grad ${CMAKE_CURRENT_SOURCE_DIR}/test_grad.c)
target_link_libraries(test_grad PRIVATE runtime dsl compiler)
add_test(NAME grad_cli COMMAND test_grad WORKING_DIRECTORY ${VMC_ROOT})
set_tests_properties(grad_cli PROPERTIES LABELS cpu TIMEOUT 300 ENVIRONMENT "OMP_WAIT_POLICY=passive")
