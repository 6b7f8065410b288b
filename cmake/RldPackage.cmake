# Packaging: the CMake package beside the pkg-config file, and the .deb built by CPack from
# the same install rules as `cmake --install` (docs/PACKAGING.md).

# ---- find_package(rld CONFIG): targets rld::rld and rld::rld_static ---------------------
include(CMakePackageConfigHelpers)
set(RLD_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/rld)
install(EXPORT rldTargets NAMESPACE rld:: DESTINATION ${RLD_CMAKE_DIR} FILE rldTargets.cmake)
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/rldConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/rldConfig.cmake INSTALL_DESTINATION ${RLD_CMAKE_DIR})
# The soname changes with the major version (librld.so.0), so does compatibility.
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/rldConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/rldConfig.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/rldConfigVersion.cmake
        DESTINATION ${RLD_CMAKE_DIR})
install(FILES ${PROJECT_SOURCE_DIR}/README.md ${PROJECT_SOURCE_DIR}/docs/PACKAGING.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR})

# ---- the .deb: `cpack -G DEB` in a build configured with -DCMAKE_INSTALL_PREFIX=/usr ------
# scripts/package.sh does both. One binary package, "rld": daemon, rlctl, librld (shared,
# static, header, rld.pc, CMake package), unit, sysusers entry, /etc/rld/rld.conf as a
# conffile, man pages.
set(RLD_PACKAGE_MAINTAINER "rld maintainers <maintainers@rld.invalid>"
    CACHE STRING "Maintainer field of the .deb")
set(CPACK_PACKAGE_NAME rld)
set(CPACK_PACKAGE_VENDOR rld)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "${RLD_PACKAGE_MAINTAINER}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "host-local rate limiter at memory speed")
set(CPACK_PACKAGE_DESCRIPTION
"rld keeps rate limits in a POSIX shared-memory segment owned by a small daemon;
worker processes on the host link librld and take tokens with one compare-and-swap,
without a system call. Fair queued waits across processes, live changes with rlctl,
Prometheus metrics.

This package holds the daemon rld (systemd unit rld.service, configuration
/etc/rld/rld.conf), the tool rlctl, and librld with its header, pkg-config file and
CMake package.")
set(CPACK_GENERATOR DEB)
set(CPACK_SOURCE_GENERATOR TGZ)
# Absolute destinations (/etc, /lib/systemd/system) must land in the staging tree.
set(CPACK_SET_DESTDIR ON)
set(CPACK_PACKAGING_INSTALL_PREFIX "${CMAKE_INSTALL_PREFIX}")
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)            # rld_0.1.0-1_amd64.deb
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_COMPRESSION_TYPE xz)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)             # Depends from dpkg-shlibdeps
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)       # DEBIAN/shlibs for librld.so.0
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS_POLICY ">=")
configure_file(${PROJECT_SOURCE_DIR}/dist/deb/conffiles.in ${PROJECT_BINARY_DIR}/dist/deb/conffiles
               @ONLY)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${PROJECT_BINARY_DIR}/dist/deb/conffiles
    ${PROJECT_SOURCE_DIR}/dist/deb/postinst
    ${PROJECT_SOURCE_DIR}/dist/deb/prerm
    ${PROJECT_SOURCE_DIR}/dist/deb/postrm
    ${PROJECT_SOURCE_DIR}/dist/deb/triggers)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)
# Debian's conventions on the staged tree (gzipped man pages, .so pages as symlinks), and
# a refusal to package a build whose paths are not a Debian system's.
set(CPACK_PRE_BUILD_SCRIPTS ${PROJECT_SOURCE_DIR}/cmake/RldDebTidy.cmake)
set(CPACK_PROJECT_CONFIG_FILE ${PROJECT_SOURCE_DIR}/cmake/RldCPackOptions.cmake)
set(CPACK_RLD_DEFAULT_CONFIG "${RLD_DEFAULT_CONFIG}")   # read by RldCPackOptions.cmake
set(CPACK_SOURCE_IGNORE_FILES "/\\\\.git/" "/build[^/]*/")
include(CPack)
