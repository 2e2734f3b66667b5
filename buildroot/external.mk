include $(sort $(wildcard $(BR2_EXTERNAL_WAGATE_PATH)/package/*/*.mk))
