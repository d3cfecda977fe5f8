# models.cmake — tests of the model zoo (models/**.vmc) against ARM_SPEC: totals, state-dict names and shapes,
# tags, and a verified graph for every ablation knob. All run `vmc` (no tensor data is allocated).
foreach(group files counts names tags graphs)
  add_test(NAME models_${group}
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/models/check_models.sh $<TARGET_FILE:vmc> ${VMC_ROOT} ${group})
  set_tests_properties(models_${group} PROPERTIES LABELS cpu TIMEOUT 300)
endforeach()

# Loss and gradient parity of ARM-B (pretraining and fine-tuning) with the PyTorch reference tests/ref/arm_ref.py.
# Needs PyTorch (a GPU machine); skips with 77 elsewhere.
foreach(backend cpu cuda)
  add_test(NAME models_parity_${backend}
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/models/parity.sh $<TARGET_FILE:vmc> ${VMC_ROOT} 1e-4 ${backend})
  set_tests_properties(models_parity_${backend} PROPERTIES LABELS gpu SKIP_RETURN_CODE 77 TIMEOUT 900)
endforeach()
