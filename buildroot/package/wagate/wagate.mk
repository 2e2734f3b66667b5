################################################################################
#
# wagate
#
################################################################################

# The source is the repository this BR2_EXTERNAL tree lives in (buildroot/ is one level
# below its root). Buildroot copies it into the build directory with rsync; build output
# and local data of a development checkout are left out.
WAGATE_SITE = $(BR2_EXTERNAL_WAGATE_PATH)/..
WAGATE_SITE_METHOD = local
WAGATE_LICENSE = MIT
WAGATE_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = \
	--exclude /target --exclude /data --exclude '*.redb' --exclude /buildroot

# The appliance runs the SPI panel; only the daemon binary ships.
WAGATE_CARGO_BUILD_OPTS = --package wagate --bin wagate --features spi

# Buildroot's cargo infrastructure sets CARGO_PROFILE_RELEASE_* from BR2_OPTIMIZE_* and
# BR2_ENABLE_LTO (opt-level 2/3/s, no LTO, 16 codegen units). wagate's release profile is
# tuned for size on small boards; these assignments come after Buildroot's on the command
# line and restore it. tests/it/appliance.rs checks they match Cargo.toml's [profile.release].
WAGATE_CARGO_ENV = \
	CARGO_PROFILE_RELEASE_OPT_LEVEL=z \
	CARGO_PROFILE_RELEASE_LTO=fat \
	CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 \
	CARGO_PROFILE_RELEASE_PANIC=abort

# Linked with rust-lld, which ships with the host Rust toolchain, packing relative relocations
# (RELR: about 0.4 MiB less for aarch64; needs glibc 2.36 or newer on the target, which the
# binary then requires by symbol version) and folding identical functions; still a
# position-independent executable. bench/arm-size.sh links the same way. A toolchain without
# rust-lld links with the cross gcc's GNU ld, as before: a bigger binary, the same program.
WAGATE_GCC_LD = $(HOST_DIR)/lib/rustlib/$(RUSTC_HOST_NAME)/bin/gcc-ld
WAGATE_CARGO_ENV += \
	$(if $(wildcard $(WAGATE_GCC_LD)/ld.lld),CARGO_TARGET_$(call UPPERCASE,$(RUSTC_TARGET_NAME))_RUSTFLAGS="-C link-arg=-fuse-ld=lld -C link-arg=-B$(WAGATE_GCC_LD) -C link-arg=-Wl$(comma)-z$(comma)pack-relative-relocs -C link-arg=-Wl$(comma)--icf=all")

# Vendoring. A local source gets no download step, so the crates are vendored here, once the
# host Rust toolchain is built: `cargo vendor --locked` into VENDOR/ (crates.io is reached
# once; the crates are cached in Buildroot's cargo home under DL_DIR), and the generated
# .cargo/config.toml (replacing the checkout's, whose cross linkers are for Debian hosts)
# points the build at them. The build itself then runs `--offline --locked`. A checkout
# that already holds VENDOR/ (`cargo vendor --locked VENDOR` run beforehand) needs no
# network at all.
define WAGATE_VENDOR_CRATES
	mkdir -p $(@D)/.cargo $(BR_CARGO_HOME)
	if [ -d $(@D)/VENDOR ]; then \
		printf '[source.crates-io]\nreplace-with = "vendored-sources"\n\n[source.vendored-sources]\ndirectory = "VENDOR"\n' \
			> $(@D)/.cargo/config.toml; \
	else \
		cd $(@D) && $(HOST_MAKE_ENV) $(PKG_COMMON_CARGO_ENV) \
			flock $(BR_CARGO_HOME)/.br-lock \
			cargo vendor --manifest-path Cargo.toml --locked VENDOR \
			> $(@D)/.cargo/config.toml; \
	fi
endef
WAGATE_PRE_CONFIGURE_HOOKS += WAGATE_VENDOR_CRATES

# The binary the build step made (cargo install would build it a second time).
define WAGATE_INSTALL_TARGET_CMDS
	$(INSTALL) -D -m 0755 \
		$(@D)/target/$(RUSTC_TARGET_NAME)/$(if $(BR2_ENABLE_DEBUG),debug,release)/wagate \
		$(TARGET_DIR)/usr/bin/wagate
endef

# The unit, enabled: Buildroot applies presets (systemctl preset-all) when it makes the rootfs.
define WAGATE_INSTALL_INIT_SYSTEMD
	$(INSTALL) -D -m 0644 $(@D)/systemd/wagate.service \
		$(TARGET_DIR)/usr/lib/systemd/system/wagate.service
	$(INSTALL) -d $(TARGET_DIR)/usr/lib/systemd/system-preset
	echo 'enable wagate.service' > $(TARGET_DIR)/usr/lib/systemd/system-preset/50-wagate.preset
endef

# The service runs as `wagate`, a member of the device groups the udev rules of the board
# overlay give /dev/spidev* and /dev/gpiochip* to.
define WAGATE_USERS
	wagate -1 wagate -1 * - - spi,gpio wagate gateway
endef

$(eval $(cargo-package))
