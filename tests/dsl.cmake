# dsl.cmake — front-end tests: golden diagnostics (tests/dsl/err), golden graph/AST/info dumps (tests/dsl/ok),
# every model file in models/ must check cleanly, and the C unit test of the public API.
file(GLOB DSL_GOLDEN CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/dsl/err/*.err ${CMAKE_CURRENT_SOURCE_DIR}/dsl/ok/*.ast
     ${CMAKE_CURRENT_SOURCE_DIR}/dsl/ok/*.graph ${CMAKE_CURRENT_SOURCE_DIR}/dsl/ok/*.info)
foreach(expected ${DSL_GOLDEN})
  file(RELATIVE_PATH rel ${CMAKE_CURRENT_SOURCE_DIR}/dsl ${expected})
  string(REGEX REPLACE "\\.[a-z]+$" ".vmc" vmc_file ${rel})
  string(REPLACE "/" "_" name ${rel})
  add_test(NAME dsl_golden_${name}
           COMMAND ${CMAKE_COMMAND} -DVMC=$<TARGET_FILE:vmc> -DDIR=${CMAKE_CURRENT_SOURCE_DIR}/dsl -DFILE=${vmc_file}
                   -DEXPECTED=${rel} -P ${CMAKE_CURRENT_SOURCE_DIR}/dsl/run_golden.cmake)
  set_tests_properties(dsl_golden_${name} PROPERTIES LABELS cpu)
endforeach()

file(GLOB DSL_MODEL_FILES CONFIGURE_DEPENDS ${VMC_ROOT}/models/*.vmc)
if(DSL_MODEL_FILES)
  add_test(NAME dsl_check_models COMMAND vmc check ${DSL_MODEL_FILES})
  set_tests_properties(dsl_check_models PROPERTIES LABELS cpu)
endif()

add_executable(test_dsl ${CMAKE_CURRENT_SOURCE_DIR}/test_dsl.c)
target_link_libraries(test_dsl PRIVATE dsl)
add_test(NAME dsl_api COMMAND test_dsl WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/dsl)
set_tests_properties(dsl_api PROPERTIES LABELS cpu)

if(VMC_FUZZ AND CMAKE_C_COMPILER_ID STREQUAL "Clang")
  add_executable(fuzz_parse ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_parse.c)
  target_compile_options(fuzz_parse PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_options(fuzz_parse PRIVATE -fsanitize=fuzzer,address,undefined)
  target_include_directories(fuzz_parse PRIVATE ${VMC_ROOT}/dsl)
  target_link_libraries(fuzz_parse PRIVATE dsl)
endif()
