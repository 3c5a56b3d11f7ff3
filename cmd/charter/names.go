package main

import (
	"crypto/rand"
	"math/big"
)

var adjectives = []string{
	"agile", "amber", "bold", "brave", "breezy", "bright", "calm", "cheeky", "chill", "clever",
	"cosmic", "crisp", "curly", "dapper", "dizzy", "eager", "fancy", "fluffy", "frosty", "fuzzy",
	"gentle", "giddy", "glossy", "happy", "hasty", "jolly", "jumpy", "keen", "lively", "lucky",
	"mellow", "merry", "mighty", "nimble", "peppy", "perky", "plucky", "quirky", "rapid", "rusty",
	"shiny", "silly", "skinny", "sleepy", "snappy", "sunny", "swift", "tidy", "wonky", "zesty",
}

var nouns = []string{
	"badger", "beaver", "bison", "camel", "cobra", "coyote", "crane", "dingo", "dolphin", "eagle",
	"falcon", "ferret", "gecko", "gopher", "heron", "hippo", "ibis", "iguana", "jackal", "koala",
	"lemur", "llama", "lynx", "marmot", "moose", "narwhal", "newt", "ocelot", "otter", "owl",
	"panda", "pigeon", "puffin", "quail", "rabbit", "raven", "salmon", "seal", "sloth", "tapir",
	"tiger", "toucan", "turtle", "urchin", "viper", "walrus", "wombat", "yak", "zebra", "taco",
}

func pick(list []string) string {
	n, err := rand.Int(rand.Reader, big.NewInt(int64(len(list))))
	if err != nil {
		return list[0]
	}
	return list[n.Int64()]
}

// randomName returns a readable DNS-safe name (adjective-noun) for which
// taken reports false.
func randomName(taken func(string) bool) string {
	for i := 0; i < 100; i++ {
		n := pick(adjectives) + "-" + pick(nouns)
		if !taken(n) {
			return n
		}
	}
	// 2,500 combinations exhausted by chance: add a number.
	for i := 2; ; i++ {
		n := pick(adjectives) + "-" + pick(nouns) + "-" + big.NewInt(int64(i)).String()
		if !taken(n) {
			return n
		}
	}
}
