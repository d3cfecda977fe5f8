// emu_call.h — calls a kernel with the arguments of a vmc launch given as an array of pointers, one per parameter
// (as cuLaunchKernel takes them), whatever the kernel's parameter types. Included by every module emu_exec.c
// compiles.
#pragma once
#include <cstddef>
#include <type_traits>
#include <utility>

template <class... A, std::size_t... I>
static void emu_call_(void (*k)(A...), void **args, std::index_sequence<I...>) {
    k(*static_cast<std::remove_cv_t<std::remove_reference_t<A>> *>(args[I])...);
}
template <class... A> static void emu_call(void (*k)(A...), void **args) {
    emu_call_(k, args, std::index_sequence_for<A...>{});
}
