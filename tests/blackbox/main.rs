mod plugins;
