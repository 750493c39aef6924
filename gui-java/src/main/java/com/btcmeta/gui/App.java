package com.btcmeta.gui; public class App {}
