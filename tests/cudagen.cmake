# cudagen.cmake — tests of the cuda backend's compiler half (fusion, plan, NVRTC) and its executor.
add_executable(test_fuse ${CMAKE_CURRENT_LIST_DIR}/test_fuse.c)
target_link_libraries(test_fuse PRIVATE compiler)
add_test(NAME fuse COMMAND test_fuse)
set_tests_properties(fuse PROPERTIES LABELS cpu)
