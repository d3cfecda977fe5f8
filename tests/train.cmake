# train.cmake — tests of the training step (optimizer graph, schedule), safetensors, checkpoints and the
# pretrain/finetune/eval commands. All cpu-labelled.
add_executable(test_optim ${CMAKE_CURRENT_LIST_DIR}/test_optim.c)
target_link_libraries(test_optim PRIVATE runtime compiler)
add_test(NAME train_optim COMMAND test_optim)
set_tests_properties(train_optim PROPERTIES LABELS cpu TIMEOUT 60 ENVIRONMENT "OMP_WAIT_POLICY=passive")

add_executable(test_safetensors ${CMAKE_CURRENT_LIST_DIR}/test_safetensors.c)
target_link_libraries(test_safetensors PRIVATE runtime)
add_test(NAME train_safetensors COMMAND test_safetensors)
set_tests_properties(train_safetensors PROPERTIES LABELS cpu TIMEOUT 60 ENVIRONMENT "OMP_WAIT_POLICY=passive")

add_executable(test_train ${CMAKE_CURRENT_LIST_DIR}/test_train.c)
target_link_libraries(test_train PRIVATE runtime compiler)
add_test(NAME train_checkpoint_resume COMMAND test_train)
set_tests_properties(train_checkpoint_resume PROPERTIES LABELS cpu TIMEOUT 60 ENVIRONMENT "OMP_WAIT_POLICY=passive")

# End to end on models/tiny.vmc + Fashion-MNIST (skips with 77 when either is missing).
add_test(NAME train_commands COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/test_train.sh $<TARGET_FILE:vmc> ${VMC_ROOT})
set_tests_properties(train_commands PROPERTIES LABELS cpu SKIP_RETURN_CODE 77 TIMEOUT 300
                     ENVIRONMENT "LSAN_OPTIONS=suppressions=${CMAKE_CURRENT_LIST_DIR}/lsan_cairo.supp")

# Bad input through the commands, plots, fine-tuning evaluations, eval --classes, the terminal progress line.
add_test(NAME train_bad_input COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/test_train_bad.sh $<TARGET_FILE:vmc> ${VMC_ROOT})
set_tests_properties(train_bad_input PROPERTIES LABELS cpu SKIP_RETURN_CODE 77 TIMEOUT 300
                     ENVIRONMENT "LSAN_OPTIONS=suppressions=${CMAKE_CURRENT_LIST_DIR}/lsan_cairo.supp")
# GPU out of memory: exit 2 with a batch size that fits (gpu: skips, 77, without a GPU).
add_test(NAME train_oom COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/test_oom.sh $<TARGET_FILE:vmc> ${VMC_ROOT})
set_tests_properties(train_oom PROPERTIES LABELS gpu SKIP_RETURN_CODE 77 TIMEOUT 300)
add_executable(test_tune_cache ${CMAKE_CURRENT_LIST_DIR}/test_tune_cache.c)
target_link_libraries(test_tune_cache PRIVATE runtime)
add_test(NAME tune_cache COMMAND test_tune_cache)
set_tests_properties(tune_cache PROPERTIES LABELS cpu TIMEOUT 60)
