# Installation (`cmake --install BUILD --prefix P`): the gradc executable, libgradc_runtime
# (static and shared), its C header, and a CMake package so that a project can say
#   find_package(gradc)   ->  gradc::gradc (the compiler), gradc::runtime (shared library),
#                             gradc::runtime_static
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

if(NOT TARGET gradc::gradc)
  add_executable(gradc::gradc ALIAS gradc)
endif()
# The installed gradc finds the LLVM shared library where the build found it.
set_target_properties(gradc PROPERTIES INSTALL_RPATH_USE_LINK_PATH TRUE)

install(TARGETS gradc EXPORT gradcTargets RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS gradc_runtime gradc_runtime_shared EXPORT gradcTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(FILES ${PROJECT_SOURCE_DIR}/runtime/gradc_runtime.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT gradcTargets NAMESPACE gradc:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/gradc)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/gradcConfig.cmake.in
  ${PROJECT_BINARY_DIR}/gradcConfig.cmake INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/gradc)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/gradcConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/gradcConfig.cmake ${PROJECT_BINARY_DIR}/gradcConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/gradc)
