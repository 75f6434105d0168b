# `cmake --install <build> --prefix P` (included last by the top-level CMakeLists.txt):
#   P/bin/amq, P/bin/amq_generators           the tool and the generators it runs
#   P/lib/libamq_{runtime,quantize,kernels}.a  kernels: every kernel + the Halide runtime
#   P/include/amq/*.h                         runtime and quantize headers
#   P/include/amq/kernels/*.h                 one header per AOT kernel
#   P/include/amq/halide/Halide{Runtime,Buffer}.h   to call the kernels directly
#   P/share/amq/schedules/*.json              the kernel manifest and schedule knobs;
#                                             build.json: the ones this build used
#                                             (amq generate's default)
#   P/share/amq/templates/*.in                amq generate's amq_kernels.h, amqKernels.cmake
#   P/lib/cmake/amq/amqConfig.cmake           find_package(amq): amq::runtime,
#                                             amq::kernels, amq::quantize, amq::amq
# Consumers need only Threads: no Halide, LLVM, JSON or CLI packages.
include(CMakePackageConfigHelpers)

set(AMQ_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/amq")
set(AMQ_INSTALL_SCHEDULESDIR "${CMAKE_INSTALL_DATADIR}/amq/schedules")

set_target_properties(amq_quantize PROPERTIES EXPORT_NAME quantize)
set_target_properties(amq_runtime PROPERTIES EXPORT_NAME runtime)
set_target_properties(amq_generators PROPERTIES EXPORT_NAME generators)
install(TARGETS amq_quantize amq_runtime amq_kernels_bundle EXPORT amqTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS amq amq_generators EXPORT amqTargets
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

install(DIRECTORY ${PROJECT_SOURCE_DIR}/quantize/include/amq
                  ${PROJECT_SOURCE_DIR}/runtime/include/amq
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
set(kernel_headers "")
foreach(lib IN LISTS AMQ_KERNEL_LIBS)
  list(APPEND kernel_headers "${PROJECT_BINARY_DIR}/generators/${lib}.h")
endforeach()
install(FILES ${kernel_headers} DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/amq/kernels)
get_target_property(halide_include Halide::Runtime INTERFACE_INCLUDE_DIRECTORIES)
find_file(AMQ_HALIDE_RUNTIME_H HalideRuntime.h PATHS ${halide_include} NO_DEFAULT_PATH REQUIRED)
find_file(AMQ_HALIDE_BUFFER_H HalideBuffer.h PATHS ${halide_include} NO_DEFAULT_PATH REQUIRED)
install(FILES ${AMQ_HALIDE_RUNTIME_H} ${AMQ_HALIDE_BUFFER_H}
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/amq/halide)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/schedules/ DESTINATION ${AMQ_INSTALL_SCHEDULESDIR}
        FILES_MATCHING PATTERN "*.json")
# The schedules the installed kernels and runtime were built with: amq generate's default.
install(FILES ${AMQ_SCHEDULES} DESTINATION ${AMQ_INSTALL_SCHEDULESDIR} RENAME build.json)
# amq generate's templates of amq_kernels.h and amqKernels.cmake.
install(FILES ${CMAKE_CURRENT_LIST_DIR}/amq_kernels.h.in ${CMAKE_CURRENT_LIST_DIR}/amqKernels.cmake.in
        DESTINATION ${CMAKE_INSTALL_DATADIR}/amq/templates)
install(FILES ${PROJECT_SOURCE_DIR}/docs/USING.md DESTINATION ${CMAKE_INSTALL_DOCDIR})

install(EXPORT amqTargets NAMESPACE amq:: DESTINATION ${AMQ_INSTALL_CMAKEDIR}
        FILE amqTargets.cmake)
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/amqConfig.cmake.in
  ${PROJECT_BINARY_DIR}/cmake/amqConfig.cmake
  INSTALL_DESTINATION ${AMQ_INSTALL_CMAKEDIR}
  PATH_VARS AMQ_INSTALL_SCHEDULESDIR CMAKE_INSTALL_BINDIR)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/cmake/amqConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/cmake/amqConfig.cmake
              ${PROJECT_BINARY_DIR}/cmake/amqConfigVersion.cmake
              ${CMAKE_CURRENT_LIST_DIR}/amqGeneratedKernels.cmake
        DESTINATION ${AMQ_INSTALL_CMAKEDIR})
