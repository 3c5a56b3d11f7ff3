{{- define "foo.name" -}}{{ .Chart.Name }}{{- end -}}
