# install() rules and the exported package config, so that an outside project can
#   find_package(ckptio CONFIG REQUIRED)
#   target_link_libraries(app PRIVATE ckptio::ckptio)
include(CMakePackageConfigHelpers)

set(CKPTIO_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/ckptio)

install(TARGETS ckptio EXPORT ckptioTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/ckptio ${PROJECT_BINARY_DIR}/generated/include/ckptio
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT ckptioTargets NAMESPACE ckptio:: DESTINATION ${CKPTIO_CMAKE_DIR})

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/ckptioConfig.cmake.in
  ${PROJECT_BINARY_DIR}/ckptioConfig.cmake INSTALL_DESTINATION ${CKPTIO_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/ckptioConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/ckptioConfig.cmake ${PROJECT_BINARY_DIR}/ckptioConfigVersion.cmake
  DESTINATION ${CKPTIO_CMAKE_DIR})
